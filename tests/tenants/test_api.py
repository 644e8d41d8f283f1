import pytest

from tenants.models import Role
from tests.factories import MembershipFactory, TenantFactory, make_api_key

pytestmark = pytest.mark.django_db

ME = "/api/v1/me/"


def test_me_shows_the_user_the_tenant_their_role_and_all_their_memberships(
    api_client, tenant, other_tenant, agent
):
    MembershipFactory.create(user=agent, tenant=other_tenant, role=Role.OWNER)
    api_client.force_authenticate(agent)

    response = api_client.get(ME, HTTP_X_TENANT="acme")

    assert response.status_code == 200
    assert response.json() == {
        "id": agent.pk,
        "username": "agnes-agent",
        "tenant": "acme",
        "role": "agent",
        "memberships": [
            {"tenant": "acme", "name": "Acme", "role": "agent", "is_active": True},
            {"tenant": "globex", "name": "Globex", "role": "owner", "is_active": True},
        ],
    }


def test_a_user_with_one_tenant_needs_no_header(api_client, viewer):
    api_client.force_login(viewer)  # session authentication

    response = api_client.get(ME)

    assert response.status_code == 200
    assert (response.json()["tenant"], response.json()["role"]) == ("acme", "viewer")


def test_a_user_with_several_tenants_and_no_header_is_told_to_send_it(
    api_client, other_tenant, agent
):
    MembershipFactory.create(user=agent, tenant=other_tenant)
    api_client.force_authenticate(agent)

    response = api_client.get(ME)

    assert response.status_code == 400
    assert "X-Tenant" in response.json()["detail"]


def test_an_unknown_tenant_answers_404(api_client, agent):
    api_client.force_authenticate(agent)

    response = api_client.get(ME, HTTP_X_TENANT="nowhere")

    assert response.status_code == 404
    assert response.json() == {"detail": "No tenant 'nowhere'."}


def test_a_tenant_the_user_is_not_in_answers_like_an_unknown_one(api_client, other_tenant, agent):
    api_client.force_authenticate(agent)

    response = api_client.get(ME, HTTP_X_TENANT="globex")

    assert response.status_code == 404
    assert response.json() == {"detail": "No tenant 'globex'."}


def test_an_inactive_tenant_answers_403(api_client, tenant, agent):
    tenant.is_active = False
    tenant.save()
    api_client.force_authenticate(agent)

    response = api_client.get(ME, HTTP_X_TENANT="acme")

    assert response.status_code == 403
    assert "tenant is inactive" in response.json()["detail"]


def test_an_inactive_tenant_the_user_is_not_in_still_answers_404(api_client, agent):
    TenantFactory.create(slug="closed", is_active=False)
    api_client.force_authenticate(agent)

    response = api_client.get(ME, HTTP_X_TENANT="closed")

    assert response.status_code == 404


def test_a_user_without_any_tenant_is_refused(api_client):
    user = MembershipFactory.create().user
    user.memberships.all().delete()
    api_client.force_authenticate(user)

    response = api_client.get(ME)

    assert response.status_code == 403
    assert response.json() == {"detail": "You are not a member of any active tenant."}


def test_a_key_bound_to_a_tenant_acts_there_without_a_header(
    api_client, tenant, other_tenant, agent
):
    MembershipFactory.create(user=agent, tenant=other_tenant, role=Role.OWNER)
    _key, raw_key = make_api_key(agent, tenant=tenant)

    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    assert response.status_code == 200
    body = response.json()
    assert (body["tenant"], body["role"]) == ("acme", "agent")
    assert [m["tenant"] for m in body["memberships"]] == ["acme"]


def test_a_key_bound_to_a_tenant_cannot_act_in_another(api_client, tenant, other_tenant, agent):
    MembershipFactory.create(user=agent, tenant=other_tenant, role=Role.OWNER)
    _key, raw_key = make_api_key(agent, tenant=tenant)

    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {raw_key}", HTTP_X_TENANT="globex")

    assert response.status_code == 403
    assert "acts only in tenant 'acme'" in response.json()["detail"]


def test_an_unbound_key_acts_in_the_tenant_the_header_names(
    api_client, tenant, other_tenant, agent
):
    MembershipFactory.create(user=agent, tenant=other_tenant, role=Role.OWNER)
    _key, raw_key = make_api_key(agent)

    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {raw_key}", HTTP_X_TENANT="globex")

    assert response.status_code == 200
    assert (response.json()["tenant"], response.json()["role"]) == ("globex", "owner")


def test_a_superuser_acts_as_owner_in_any_tenant(api_client, tenant, other_tenant):
    superuser = MembershipFactory.create(
        tenant=tenant, role=Role.VIEWER, user__is_superuser=True
    ).user
    api_client.force_authenticate(superuser)

    response = api_client.get(ME, HTTP_X_TENANT="globex")

    assert response.status_code == 200
    assert (response.json()["tenant"], response.json()["role"]) == ("globex", "owner")
