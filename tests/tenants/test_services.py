import pytest
from django.core.exceptions import ValidationError

from tenants.authentication import ApiKeyAuthentication
from tenants.models import ApiKey, Membership, Role, Tenant
from tenants.services import (
    add_member,
    create_api_key,
    create_tenant,
    remove_member,
    revoke_api_key,
    set_role,
    set_up_demo,
)
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_creating_a_tenant_with_an_owner_makes_them_its_owner():
    user = UserFactory.create()

    tenant = create_tenant(name="Acme Ltd", slug="acme", owner=user)

    assert (tenant.name, tenant.slug, tenant.is_active) == ("Acme Ltd", "acme", True)
    assert Membership.objects.get(tenant=tenant).role == Role.OWNER


def test_creating_a_tenant_with_a_taken_slug_says_the_slug_exists():
    TenantFactory.create(slug="acme")

    with pytest.raises(ValidationError) as error:
        create_tenant(name="Another Acme", slug="acme")

    assert error.value.message_dict == {"slug": ["A tenant with the slug 'acme' already exists."]}
    assert Tenant.objects.filter(slug="acme").count() == 1


@pytest.mark.parametrize("slug", ["", "has space", "ünïcode", "a/b"])
def test_creating_a_tenant_with_an_invalid_slug_is_refused(slug):
    with pytest.raises(ValidationError) as error:
        create_tenant(name="Acme", slug=slug)

    assert "slug" in error.value.message_dict
    assert not Tenant.objects.exists()


def test_adding_an_existing_member_again_is_refused(tenant):
    membership = MembershipFactory.create(tenant=tenant, role=Role.AGENT)

    with pytest.raises(ValidationError, match="already a member"):
        add_member(tenant, user=membership.user, role=Role.OWNER)

    membership.refresh_from_db()
    assert membership.role == Role.AGENT


def test_an_unknown_role_is_refused(tenant):
    with pytest.raises(ValidationError, match="is not a role"):
        add_member(tenant, user=UserFactory.create(), role="emperor")


def test_setting_a_role_changes_only_that_membership(tenant, other_tenant):
    user = UserFactory.create()
    membership = MembershipFactory.create(user=user, tenant=tenant, role=Role.VIEWER)
    MembershipFactory.create(user=user, tenant=other_tenant, role=Role.VIEWER)

    set_role(membership, role=Role.ADMIN)

    roles = dict(Membership.objects.filter(user=user).values_list("tenant__slug", "role"))
    assert roles == {"acme": Role.ADMIN, "globex": Role.VIEWER}


def test_removing_a_member_keeps_the_user_and_their_other_tenants(tenant, other_tenant):
    user = UserFactory.create()
    membership = MembershipFactory.create(user=user, tenant=tenant)
    MembershipFactory.create(user=user, tenant=other_tenant)

    remove_member(membership)

    assert list(Membership.objects.filter(user=user).values_list("tenant__slug", flat=True)) == [
        "globex"
    ]


def test_an_api_key_is_stored_only_as_a_hash_and_authenticates(tenant, agent):
    key, raw_key = create_api_key(user=agent, name="shop", tenant=tenant)

    prefix, lookup, secret = raw_key.split("_", 2)
    assert (prefix, lookup, len(lookup)) == ("cvk", key.lookup, 12)
    assert lookup.isalnum()
    assert key.digest == ApiKey.hash_secret(secret) != secret
    assert ApiKeyAuthentication()._check(raw_key) == (agent, key)


def test_an_api_key_for_a_tenant_the_user_is_not_in_is_refused(other_tenant, agent):
    with pytest.raises(ValidationError, match="not a member of globex"):
        create_api_key(user=agent, name="shop", tenant=other_tenant)

    assert not ApiKey.objects.exists()


def test_a_superuser_may_hold_a_key_for_any_tenant(other_tenant):
    superuser = UserFactory.create(is_superuser=True)

    key, _raw_key = create_api_key(user=superuser, name="ops", tenant=other_tenant)

    assert key.tenant == other_tenant


def test_revoking_a_key_twice_keeps_the_first_revocation_time(agent):
    key, _raw_key = create_api_key(user=agent, name="shop")
    revoke_api_key(key)
    first = key.revoked_at

    revoke_api_key(key)

    assert first is not None
    assert key.revoked_at == first


def test_setting_up_the_demo_twice_leaves_one_working_demo_key():
    first = set_up_demo(password="first-password")

    second = set_up_demo(password="second-password")

    assert second.tenant == first.tenant
    assert second.user.check_password("second-password")
    assert second.user.is_superuser
    assert Membership.objects.get(tenant=second.tenant, user=second.user).role == Role.OWNER
    assert ApiKey.objects.filter(name="demo", revoked_at__isnull=True).count() == 1
    assert ApiKey.objects.filter(name="demo", revoked_at__isnull=False).count() == 1
