import re

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tenants.models import ApiKey, Membership, Role, Tenant
from tenants.services import revoke_api_key
from tests.factories import MembershipFactory, UserFactory, make_api_key, make_member

pytestmark = pytest.mark.django_db


def url(model: str, view: str, *args: object) -> str:
    return reverse(f"admin:tenants_{model}_{view}", args=args)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def outsider(other_tenant):
    """A member of the other tenant only."""
    return make_member(other_tenant, Role.OWNER, username="otto-outsider", is_staff=True)


@pytest.mark.parametrize("model", ["tenant", "membership", "apikey"])
@pytest.mark.parametrize("view", ["changelist", "add"])
def test_every_admin_page_opens_for_a_superuser(admin_client, tenant, agent, model, view):
    response = admin_client.get(url(model, view))

    assert response.status_code == 200


@pytest.mark.parametrize("model", ["tenant", "membership", "apikey"])
def test_every_change_page_opens_for_a_superuser(admin_client, tenant, agent, model):
    make_api_key(agent, tenant=tenant)
    obj = {"tenant": tenant, "membership": agent.memberships.get(), "apikey": ApiKey.objects.get()}

    response = admin_client.get(url(model, "change", obj[model].pk))

    assert response.status_code == 200


@pytest.mark.parametrize("model", ["tenant", "membership", "apikey"])
def test_a_tenant_owner_can_open_each_changelist_without_django_permissions(tenant_owner, model):
    response = client_for(tenant_owner).get(url(model, "changelist"))

    assert response.status_code == 200
    assert not tenant_owner.user_permissions.exists()


def test_a_staff_member_sees_only_their_tenants_memberships(tenant_owner, agent, outsider):
    response = client_for(tenant_owner).get(url("membership", "changelist"))

    shown = {m.user.username for m in response.context["cl"].result_list}
    assert shown == {"olivia-owner", "agnes-agent"}
    assert "Globex" not in response.content.decode()  # not even in the tenant filter


def test_a_superuser_sees_every_tenants_memberships(admin_client, tenant_owner, agent, outsider):
    response = admin_client.get(url("membership", "changelist"))

    shown = {m.user.username for m in response.context["cl"].result_list}
    assert shown == {"olivia-owner", "agnes-agent", "otto-outsider"}


def test_a_staff_member_sees_only_their_tenants_api_keys(
    tenant, other_tenant, tenant_admin, outsider
):
    make_api_key(tenant_admin, tenant=tenant, name="acme shop")
    make_api_key(outsider, tenant=other_tenant, name="globex shop")

    response = client_for(tenant_admin).get(url("apikey", "changelist"))

    assert [key.name for key in response.context["cl"].result_list] == ["acme shop"]


def test_a_superuser_sees_every_api_key(admin_client, tenant, other_tenant, tenant_admin, outsider):
    make_api_key(tenant_admin, tenant=tenant, name="acme shop")
    make_api_key(outsider, tenant=other_tenant, name="globex shop")
    make_api_key(outsider, name="unbound")

    response = admin_client.get(url("apikey", "changelist"))

    names = {key.name for key in response.context["cl"].result_list}
    assert names == {"acme shop", "globex shop", "unbound"}


def test_another_tenants_row_cannot_be_opened(tenant_owner, outsider):
    membership = outsider.memberships.get()

    response = client_for(tenant_owner).get(url("membership", "change", membership.pk))

    assert response.status_code == 302  # the admin's "does not exist" redirect
    assert Membership.objects.get(pk=membership.pk).role == Role.OWNER


def test_the_membership_changelist_costs_the_same_queries_for_more_rows(tenant, tenant_owner):
    client = client_for(tenant_owner)
    client.get(url("membership", "changelist"))
    with CaptureQueriesContext(connection) as few:
        client.get(url("membership", "changelist"))
    for _ in range(5):
        MembershipFactory.create(tenant=tenant)

    with CaptureQueriesContext(connection) as many:
        response = client.get(url("membership", "changelist"))

    assert len(response.context["cl"].result_list) == 6
    assert len(many) == len(few)


def test_a_staff_user_without_membership_sees_no_tenant_pages():
    staff = UserFactory.create(is_staff=True)
    client = client_for(staff)

    index = client.get(reverse("admin:index"))
    changelist = client.get(url("membership", "changelist"))

    assert "tenants" not in [app["app_label"] for app in index.context["app_list"]]
    assert changelist.status_code == 403


def test_a_viewer_may_look_but_not_change(tenant, agent):
    viewer = make_member(tenant, Role.VIEWER, is_staff=True)
    client = client_for(viewer)
    membership = agent.memberships.get()

    changelist = client.get(url("membership", "changelist"))
    add = client.get(url("membership", "add"))
    change = client.post(url("membership", "change", membership.pk), {"role": Role.OWNER})

    assert changelist.status_code == 200
    assert add.status_code == 403
    assert change.status_code == 403
    assert Membership.objects.get(pk=membership.pk).role == Role.AGENT


def test_a_tenant_admin_may_not_manage_memberships(tenant_admin, agent):
    membership = agent.memberships.get()
    client = client_for(tenant_admin)

    add = client.get(url("membership", "add"))
    change = client.post(url("membership", "change", membership.pk), {"role": Role.OWNER})

    assert (add.status_code, change.status_code) == (403, 403)
    assert Membership.objects.get(pk=membership.pk).role == Role.AGENT


def test_an_owner_adds_a_member_of_their_tenant(tenant, other_tenant, tenant_owner):
    newcomer = make_member(other_tenant, Role.VIEWER)
    MembershipFactory.create(user=tenant_owner, tenant=other_tenant, role=Role.OWNER)

    response = client_for(tenant_owner).post(
        url("membership", "add"), {"user": newcomer.pk, "tenant": tenant.pk, "role": Role.AGENT}
    )

    assert response.status_code == 302
    assert Membership.objects.get(user=newcomer, tenant=tenant).role == Role.AGENT


def test_an_owner_changes_a_members_role(tenant_owner, agent):
    membership = agent.memberships.get()

    response = client_for(tenant_owner).post(
        url("membership", "change", membership.pk), {"role": Role.ADMIN}
    )

    assert response.status_code == 302
    assert Membership.objects.get(pk=membership.pk).role == Role.ADMIN


def test_an_owner_cannot_add_a_member_to_another_tenant(tenant, other_tenant, tenant_owner, agent):
    response = client_for(tenant_owner).post(
        url("membership", "add"), {"user": agent.pk, "tenant": other_tenant.pk, "role": Role.OWNER}
    )

    assert response.status_code == 200  # the form again, with the error
    assert "tenant" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(tenant=other_tenant).exists()


def test_an_owner_removes_a_member(tenant_owner, agent):
    membership = agent.memberships.get()

    response = client_for(tenant_owner).post(
        url("membership", "delete", membership.pk), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_creating_a_key_in_the_admin_shows_the_raw_key_once(api_client, tenant, tenant_admin):
    response = client_for(tenant_admin).post(
        url("apikey", "add"), {"user": tenant_admin.pk, "tenant": tenant.pk, "name": "shop"}
    )

    assert response.status_code == 302
    key = ApiKey.objects.get(name="shop")
    (shown,) = [str(m) for m in get_messages(response.wsgi_request) if "copy it now" in str(m)]
    match = re.search(r"cvk_[A-Za-z0-9]+_[\w-]+", shown)
    assert match, shown
    raw_key = match.group()
    assert raw_key.startswith(f"cvk_{key.lookup}_")
    me = api_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert (me.status_code, me.json()["tenant"]) == (200, "acme")


def test_tenant_staff_may_create_keys_only_for_themselves(tenant, tenant_admin, agent):
    response = client_for(tenant_admin).post(
        url("apikey", "add"), {"user": agent.pk, "tenant": tenant.pk, "name": "shop"}
    )

    assert response.status_code == 200
    assert "user" in response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()


def test_a_superuser_cannot_give_a_key_for_a_tenant_the_user_is_not_in(
    admin_client, other_tenant, agent
):
    response = admin_client.post(
        url("apikey", "add"), {"user": agent.pk, "tenant": other_tenant.pk, "name": "shop"}
    )

    assert response.status_code == 200
    assert "tenant" in response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()


def test_revoking_selected_keys_skips_tenants_where_the_user_only_views(
    tenant, other_tenant, tenant_admin
):
    MembershipFactory.create(user=tenant_admin, tenant=other_tenant, role=Role.VIEWER)
    own, _raw = make_api_key(tenant_admin, tenant=tenant)
    viewed, _raw = make_api_key(tenant_admin, tenant=other_tenant)

    response = client_for(tenant_admin).post(
        url("apikey", "changelist"),
        {"action": "revoke_selected", "_selected_action": [own.pk, viewed.pk]},
    )

    assert response.status_code == 302
    own.refresh_from_db()
    viewed.refresh_from_db()
    assert own.revoked_at is not None
    assert viewed.revoked_at is None
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Revoked 1 key(s)."]


def test_an_owner_changes_their_tenants_settings_but_not_its_slug_limits_or_dispatch(
    tenant, tenant_owner
):
    response = client_for(tenant_owner).post(
        url("tenant", "change", tenant.pk),
        {
            "slug": "renamed",
            "rate_limits": '{"email": "999/s"}',
            "concurrency_limits": '{"imports": 50}',
            "weight": "100",
            "paused_queues": "[]",
            "backlog_caps": '{"email": 1}',
            "retention_days": "30",
            "default_region": "FR",
            "time_zone": "Europe/Paris",
        },
    )

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.slug == "acme"
    assert (tenant.rate_limits, tenant.concurrency_limits) == ({}, {})
    assert (tenant.weight, tenant.backlog_caps) == (1, {})
    assert tenant.retention_days == 30
    assert (tenant.default_region, tenant.time_zone) == ("FR", "Europe/Paris")


def test_a_superuser_sets_a_tenants_rate_and_concurrency_limits(tenant, admin_client):
    response = admin_client.post(
        url("tenant", "change", tenant.pk),
        {
            "name": "Acme",
            "slug": "acme",
            "is_active": "on",
            "rate_limits": '{"email": "20/s"}',
            "concurrency_limits": '{"imports": 3}',
            "weight": "1",
            "paused_queues": "[]",
            "backlog_caps": "{}",
            "queue_defaults": "{}",
            "default_region": "US",
            "time_zone": "UTC",
        },
    )

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.rate_limits, tenant.concurrency_limits) == ({"email": "20/s"}, {"imports": 3})


def test_a_bad_setting_is_shown_as_a_form_error(tenant, tenant_owner):
    response = client_for(tenant_owner).post(
        url("tenant", "change", tenant.pk),
        {"time_zone": "Mars/Olympus", "default_region": "US", "retention_days": ""},
    )

    assert response.status_code == 200
    assert "time_zone" in response.context["adminform"].form.errors


def test_only_superusers_add_or_delete_tenants(tenant, tenant_owner):
    client = client_for(tenant_owner)

    add = client.get(url("tenant", "add"))
    delete = client.post(url("tenant", "delete", tenant.pk), {"post": "yes"})

    assert (add.status_code, delete.status_code) == (403, 403)
    assert Tenant.objects.filter(pk=tenant.pk).exists()


def test_a_tenant_admin_may_not_change_the_tenant(tenant, tenant_admin):
    response = client_for(tenant_admin).post(
        url("tenant", "change", tenant.pk),
        {"rate_limits": '{"email": "99/s"}', "concurrency_limits": "{}", "retention_days": ""},
    )

    assert response.status_code == 403
    tenant.refresh_from_db()
    assert tenant.rate_limits == {}


def test_adding_someone_who_is_already_a_member_shows_a_form_error(tenant, tenant_owner, agent):
    response = client_for(tenant_owner).post(
        url("membership", "add"), {"user": agent.pk, "tenant": tenant.pk, "role": Role.OWNER}
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Membership.objects.get(user=agent).role == Role.AGENT


def test_renaming_a_revoked_key_in_the_admin_keeps_it_revoked(tenant, tenant_admin):
    key, _raw_key = make_api_key(tenant_admin, tenant=tenant, name="shop")
    revoke_api_key(key)

    response = client_for(tenant_admin).post(url("apikey", "change", key.pk), {"name": "old shop"})

    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.name, key.revoked_at is not None) == ("old shop", True)
