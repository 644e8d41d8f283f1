from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.models import ApiKey, Role
from tenants.selectors import find_api_key
from tenants.services import revoke_api_key
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db

ME = "/api/v1/me/"


def test_a_valid_api_key_authenticates_and_records_its_use(api_client, tenant, agent):
    key, raw_key = make_api_key(agent, tenant=tenant)

    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    assert response.status_code == 200
    assert response.json()["username"] == "agnes-agent"
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert key.last_used_at <= timezone.now()


def test_the_token_keyword_works_like_bearer(api_client, tenant, agent):
    _key, raw_key = make_api_key(agent, tenant=tenant)

    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Token {raw_key}")

    assert response.status_code == 200


def test_a_key_with_the_wrong_secret_is_refused(api_client, tenant, agent):
    key, _raw_key = make_api_key(agent, tenant=tenant)

    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer cvk_{key.lookup}_not-the-secret")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked API key."}
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_revoked_key_is_refused(api_client, tenant, agent):
    key, raw_key = make_api_key(agent, tenant=tenant)
    revoke_api_key(key)

    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked API key."}


def test_a_key_of_an_inactive_user_is_refused(api_client, tenant, agent):
    _key, raw_key = make_api_key(agent, tenant=tenant)
    agent.is_active = False
    agent.save()

    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    assert response.status_code == 401
    assert response.json() == {"detail": "The key's user is inactive."}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer", "Send the API key as 'Authorization: Bearer <key>'."),
        ("Bearer two parts", "Send the API key as 'Authorization: Bearer <key>'."),
        ("Bearer not-a-key", "Invalid or revoked API key."),
        ("Bearer xyz_abc_def", "Invalid or revoked API key."),
    ],
)
def test_a_malformed_authorization_header_is_refused(api_client, agent, header, message):
    response = api_client.get(ME, HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json() == {"detail": message}


def test_no_credentials_at_all_answer_401(api_client, agent):
    response = api_client.get(ME)

    assert response.status_code == 401


def test_a_key_used_again_within_a_minute_is_not_written_again(api_client, tenant, agent):
    key, raw_key = make_api_key(agent, tenant=tenant)
    recently = timezone.now() - timedelta(seconds=10)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=recently)

    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    assert response.status_code == 200
    key.refresh_from_db()
    assert key.last_used_at == recently


def test_a_key_is_read_with_its_user_tenant_and_role_in_one_query(
    tenant, agent, django_assert_num_queries
):
    tenant.backlog_caps = {"default": 5}
    tenant.save(update_fields=["backlog_caps"])
    bound, _ = make_api_key(agent, tenant=tenant)
    unbound, _ = make_api_key(agent, name="anywhere")

    with django_assert_num_queries(1):
        found = find_api_key(bound.lookup)
    anywhere = find_api_key(unbound.lookup)

    assert found is not None
    assert (found.pk, found.user, found.tenant) == (bound.pk, agent, tenant)
    assert found.user.username == "agnes-agent"
    assert getattr(found.tenant, "backlog_caps", None) == {"default": 5}
    assert getattr(found, "bound_role", None) == Role.AGENT
    assert anywhere is not None
    assert (anywhere.tenant, getattr(anywhere, "bound_role", "")) == (None, None)


def test_a_revoked_or_unknown_key_is_not_found(tenant, agent):
    key, _ = make_api_key(agent, tenant=tenant)
    revoke_api_key(key)

    assert (find_api_key(key.lookup), find_api_key("nosuchlookup")) == (None, None)
