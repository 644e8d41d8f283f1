"""What owners manage through the API, by the admin's rules: the tenant's own settings and its
members."""

import pytest
from django.contrib.admin.models import LogEntry
from rest_framework.test import APIClient

from tenants.models import Membership, Role, Tenant
from tests.factories import make_member

pytestmark = pytest.mark.django_db


def _client(user, tenant: Tenant) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    client.credentials(HTTP_X_TENANT=tenant.slug)
    return client


def test_members_read_the_tenants_settings_and_owners_change_them(tenant, tenant_owner, viewer):
    as_owner, as_viewer = _client(tenant_owner, tenant), _client(viewer, tenant)
    change = {"queue_defaults": {"reports": {"timeout": 1800}}, "time_zone": "Europe/Paris"}

    assert as_viewer.get("/api/v1/tenant/").json()["slug"] == tenant.slug
    assert as_viewer.patch("/api/v1/tenant/", change, format="json").status_code == 403
    response = as_owner.patch("/api/v1/tenant/", change, format="json")

    assert response.status_code == 200
    tenant.refresh_from_db()
    assert tenant.queue_defaults == {"reports": {"timeout": 1800}}
    assert tenant.time_zone == "Europe/Paris"
    assert LogEntry.objects.filter(object_id=str(tenant.pk)).exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"queue_defaults": {"nowhere": {"timeout": 5}}}, "queue_defaults"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"retention_days": 0}, "retention_days"),
    ],
)
def test_bad_settings_answer_400_naming_the_field(tenant, tenant_owner, change, field):
    response = _client(tenant_owner, tenant).patch("/api/v1/tenant/", change, format="json")

    assert response.status_code == 400
    assert field in response.json()


def test_owners_cannot_change_their_own_limits_or_dispatch(tenant, tenant_owner):
    change = {"rate_limits": {"email": "1000/s"}, "weight": 50}

    response = _client(tenant_owner, tenant).patch("/api/v1/tenant/", change, format="json")

    tenant.refresh_from_db()
    assert response.status_code == 200  # unknown fields are ignored, as DRF does
    assert (tenant.rate_limits, tenant.weight) == ({}, 1)


def test_an_owner_adds_a_colleague_changes_the_role_and_removes_them(
    tenant, other_tenant, tenant_owner
):
    Membership.objects.create(tenant=other_tenant, user=tenant_owner, role=Role.OWNER)
    colleague = make_member(other_tenant, Role.VIEWER, username="colleague")
    client = _client(tenant_owner, tenant)

    added = client.post("/api/v1/members/", {"username": "colleague", "role": "agent"}, "json")
    assert added.status_code == 201
    member = added.json()["id"]
    assert client.patch(f"/api/v1/members/{member}/", {"role": "admin"}, "json").json()["role"] == (
        "admin"
    )
    assert client.delete(f"/api/v1/members/{member}/").status_code == 204

    assert not Membership.objects.filter(tenant=tenant, user=colleague).exists()
    assert Membership.objects.filter(tenant=other_tenant, user=colleague).exists()


def test_an_owner_cannot_add_a_stranger_nor_learn_whether_they_exist(tenant, tenant_owner):
    make_member(Tenant.objects.create(slug="far", name="Far"), Role.VIEWER, username="stranger")
    client = _client(tenant_owner, tenant)

    stranger = client.post("/api/v1/members/", {"username": "stranger"}, format="json")
    nobody = client.post("/api/v1/members/", {"username": "nobody"}, format="json")

    assert stranger.status_code == nobody.status_code == 400
    assert "stranger" in stranger.json()["username"][0]
    assert not Membership.objects.filter(tenant=tenant, user__username="stranger").exists()


def test_the_last_owner_is_neither_demoted_nor_removed(tenant, tenant_owner):
    own = Membership.objects.get(tenant=tenant, user=tenant_owner)
    client = _client(tenant_owner, tenant)

    demoted = client.patch(f"/api/v1/members/{own.pk}/", {"role": "viewer"}, format="json")
    removed = client.delete(f"/api/v1/members/{own.pk}/")

    assert demoted.status_code == removed.status_code == 400
    assert "at least one owner" in str(demoted.json())
    assert Membership.objects.get(pk=own.pk).role == Role.OWNER


def test_members_list_the_tenants_members_and_admins_cannot_change_them(
    tenant, other_tenant, tenant_admin, viewer
):
    theirs = make_member(other_tenant, Role.VIEWER, username="theirs")
    client = _client(tenant_admin, tenant)

    names = {row["username"] for row in client.get("/api/v1/members/").json()}
    other = Membership.objects.get(user=theirs)
    own_viewer = Membership.objects.get(tenant=tenant, user=viewer)

    assert viewer.username in names
    assert "theirs" not in names
    assert client.get(f"/api/v1/members/{other.pk}/").status_code == 404
    refused = client.patch(f"/api/v1/members/{own_viewer.pk}/", {"role": "owner"}, "json")
    assert refused.status_code == 403
