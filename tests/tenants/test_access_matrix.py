"""The role matrix (tenants.access) as the attacker meets it: every API endpoint × method × role,
and every admin model × role × page, each derived from the one table.

A new endpoint is covered as soon as it names its `access_area`; a new admin model needs one
builder in `ROWS` (the guard test says so), and an admin page beyond the changelist and the
change page one line in `ADMIN_PAGES`.
"""

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import models
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.models import AlertRule, DigestSubscription, Incident
from communications.models import (
    Campaign,
    Contact,
    ContactExport,
    ContactImport,
    Message,
    MessageTemplate,
    Notification,
    Sender,
    WebhookDelivery,
    WebhookEndpoint,
)
from jobs.models import Batch, Job, JobLog, OnceMarker, Schedule
from reports.models import Report
from tenants import access
from tenants.admin import TenantScopedAdminMixin
from tenants.models import ApiKey, Membership, Role, Tenant
from tenants.permissions import HasTenantRole
from tests.factories import make_api_key, make_member
from workflows.models import Automation, Workflow

ROLES = [Role.VIEWER, Role.AGENT, Role.ADMIN, Role.OWNER]


@pytest.fixture(autouse=True)
def _rolled_back(db: None) -> None:
    """Permissions need no committed transactions: each test rolls back."""


@pytest.fixture
def members(tenant: Tenant) -> dict[str, User]:
    return {
        role: make_member(tenant, role, username=f"staff-{role}", is_staff=True) for role in ROLES
    }


# --- The API: every endpoint, method and role ---------------------------------------------------


def _api_routes() -> Iterator[tuple[str, Any]]:
    def walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, Any]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.callback

    for route, callback in walk(get_resolver().url_patterns, "/"):
        view = getattr(callback, "view_class", None)
        if route.startswith("/api/v1/") and view and HasTenantRole in view.permission_classes:
            yield route, view


def _concrete(route: str) -> str:
    for converter, value in (("uuid", str(uuid.uuid4())), ("int", "987654"), ("str", "x")):
        while f"<{converter}:" in route:
            start = route.index(f"<{converter}:")
            route = route[:start] + value + route[route.index(">", start) + 1 :]
    return route.replace("<", "").replace(">", "")


API_CASES = [
    (route, view, method)
    for route, view in _api_routes()
    for method in ("get", "post", "put", "patch", "delete")
    if hasattr(view, method)
]


def test_every_tenant_endpoint_names_an_area_of_the_matrix():
    unnamed = [route for route, view, _ in API_CASES if view.__dict__.get("access_area") is None]
    named = {getattr(view, "access_area", None) for _, view, _ in API_CASES}

    assert API_CASES
    assert not [route for route, view, _ in API_CASES if getattr(view, "access_area", None) is None]
    assert named <= set(access.MATRIX), unnamed


@pytest.mark.parametrize(("route", "view", "method"), API_CASES, ids=lambda v: str(v))
def test_each_role_meets_the_matrix_on_every_endpoint(tenant, members, route, view, method):
    write = getattr(view, "access_write", method != "get")
    needed = access.required_role(view.access_area, write=write)

    for role, user in members.items():
        client = APIClient()
        client.force_authenticate(user)
        response = getattr(client, method)(
            _concrete(route), {}, format="json", HTTP_X_TENANT=tenant.slug
        )
        allowed = Role.rank(role) >= Role.rank(needed)
        assert (response.status_code != 403) is allowed, (role, response.status_code)
        assert response.status_code < 500


# --- The admin: every model, role and page ------------------------------------------------------


def _job(tenant: Tenant, owner: User) -> Job:
    return Job.objects.create(tenant=tenant, kind="jobs.noop", queue="default", timeout=60)


def _rule(tenant: Tenant) -> AlertRule:
    return AlertRule.objects.create(
        tenant=tenant, name="slow", condition="oldest_waiting", threshold=60
    )


def _incident(tenant: Tenant) -> Incident:
    now = timezone.now()
    return Incident.objects.create(
        rule=_rule(tenant), tenant=tenant, summary="slow", opened_at=now, last_seen_at=now
    )


def _endpoint(tenant: Tenant) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        tenant=tenant, url="https://hooks.example.com/", secret="s"
    )


ROWS: dict[type[models.Model], Callable[[Tenant, User], models.Model]] = {
    Membership: lambda tenant, owner: Membership.objects.get(tenant=tenant, user=owner),
    ApiKey: lambda tenant, owner: make_api_key(owner, tenant=tenant)[0],
    Job: _job,
    Batch: lambda tenant, owner: Batch.objects.create(tenant=tenant, total=1),
    JobLog: lambda tenant, owner: JobLog.objects.create(
        job=_job(tenant, owner), tenant=tenant, event="enqueued"
    ),
    Schedule: lambda tenant, owner: Schedule.objects.create(
        tenant=tenant, name="nightly", kind="jobs.noop", cron="@daily"
    ),
    Campaign: lambda tenant, owner: Campaign.objects.create(
        tenant=tenant, name="spring", channel="email", template="welcome"
    ),
    ContactImport: lambda tenant, owner: ContactImport.objects.create(tenant=tenant, format="csv"),
    ContactExport: lambda tenant, owner: ContactExport.objects.create(tenant=tenant, format="csv"),
    Contact: lambda tenant, owner: Contact.objects.create(tenant=tenant, email="a@example.com"),
    Message: lambda tenant, owner: Message.objects.create(
        tenant=tenant, channel="email", recipient="a@example.com"
    ),
    Notification: lambda tenant, owner: Notification.objects.create(
        tenant=tenant, user=owner, title="For the owner only"
    ),
    MessageTemplate: lambda tenant, owner: MessageTemplate.objects.create(
        tenant=tenant, name="welcome"
    ),
    WebhookEndpoint: lambda tenant, owner: _endpoint(tenant),
    WebhookDelivery: lambda tenant, owner: WebhookDelivery.objects.create(
        tenant=tenant,
        endpoint=_endpoint(tenant),
        event_id=uuid.uuid4(),
        event_type="contact.created",
        payload={},
    ),
    Sender: lambda tenant, owner: Sender.objects.create(
        tenant=tenant, channel="email", provider="deployment", from_address="a@b.co"
    ),
    Report: lambda tenant, owner: Report.objects.create(
        tenant=tenant, type="job_activity", format="csv"
    ),
    Workflow: lambda tenant, owner: Workflow.objects.create(tenant=tenant, name="onboarding"),
    Automation: lambda tenant, owner: Automation.objects.create(
        tenant=tenant, name="welcome", event_type="contact.created", workflow_name="w", steps=[]
    ),
    OnceMarker: lambda tenant, owner: OnceMarker.objects.create(tenant=tenant, name="welcome"),
    AlertRule: lambda tenant, owner: _rule(tenant),
    Incident: lambda tenant, owner: _incident(tenant),
    DigestSubscription: lambda tenant, owner: DigestSubscription.objects.create(
        tenant=tenant, user=owner
    ),
}

SCOPED = {
    model: model_admin
    for model, model_admin in admin.site._registry.items()
    if isinstance(model_admin, TenantScopedAdminMixin)
}


def test_every_tenant_scoped_admin_names_an_area_and_has_a_row_builder():
    assert set(SCOPED) == set(ROWS)
    for model_admin in SCOPED.values():
        assert model_admin.access_area in access.MATRIX, model_admin


def _sees_row(role: str, rule: access.Rule, model: type[models.Model]) -> bool:
    if Role.rank(role) < Role.rank(rule.read):
        return False
    # Own rows: the row belongs to the owner (and the owner manages every key of the tenant).
    return not rule.own_rows_only or role == Role.OWNER


@pytest.mark.parametrize("model", list(ROWS), ids=lambda model: model.__name__)
def test_each_staff_role_meets_the_matrix_on_every_admin_model(tenant, members, model):
    row = ROWS[model](tenant, members[Role.OWNER])
    rule = access.rule(SCOPED[model].access_area)
    meta = model._meta
    changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[row.pk])

    for role, user in members.items():
        client = Client()
        client.force_login(user)
        listed = client.get(changelist)
        page = client.get(change)
        may_list = Role.rank(role) >= Role.rank(rule.read)
        sees = _sees_row(role, rule, model)

        assert (listed.status_code == 200) is may_list, (role, listed.status_code)
        if may_list:
            assert (change in listed.content.decode()) is sees, role
        assert (page.status_code == 200) is sees, (role, page.status_code)
        if sees and SCOPED[model].has_change_permission(page.wsgi_request, row):
            assert Role.rank(role) >= Role.rank(rule.write), role


# Admin pages beyond the changelist and the change page: (URL name, the row's model when the
# page is about a row, whether the page writes). Each role may open them exactly as the matrix says.
ADMIN_PAGES: list[tuple[str, type[models.Model], bool, bool]] = [
    ("communications_contactimport_add", ContactImport, False, True),
    ("communications_contactexport_add", ContactExport, False, True),
    ("communications_contactimport_progress", ContactImport, True, False),
    ("communications_contactexport_progress", ContactExport, True, False),
    ("communications_contactimport_run", ContactImport, True, True),
]


@pytest.mark.parametrize(("name", "model", "of_row", "write"), ADMIN_PAGES, ids=lambda v: str(v))
def test_each_staff_role_meets_the_matrix_on_every_admin_page(
    tenant, members, name, model, of_row, write
):
    args = [ROWS[model](tenant, members[Role.OWNER]).pk] if of_row else []
    needed = access.required_role(SCOPED[model].access_area, write=write)

    for role, user in members.items():
        client = Client()
        client.force_login(user)
        response = client.get(reverse(f"admin:{name}", args=args))
        allowed = Role.rank(role) >= Role.rank(needed)
        assert (response.status_code in (200, 302)) is allowed, (role, response.status_code)


# --- The holes the matrix closes, tried directly ----------------------------------------------


def test_a_filter_naming_a_tenant_the_user_cannot_see_lists_nothing(tenant, other_tenant, members):
    Contact.objects.create(tenant=tenant, email="mine@example.com")
    Contact.objects.create(tenant=other_tenant, email="theirs@example.com")
    client = Client()
    client.force_login(members[Role.AGENT])
    changelist = reverse("admin:communications_contact_changelist")

    crafted = client.get(changelist, {"tenant__id__exact": other_tenant.pk}).content.decode()
    own = client.get(changelist, {"tenant__id__exact": tenant.pk}).content.decode()
    acted = client.post(
        f"{changelist}?tenant__id__exact={other_tenant.pk}",
        {"action": "opt_out_selected", "select_across": "1", "index": "0", "_selected_action": []},
    )

    assert "mine@example.com" not in crafted
    assert "theirs@example.com" not in crafted
    assert "mine@example.com" in own
    assert acted.status_code in (200, 302)
    assert not Contact.objects.filter(opted_out=True).exists()


def test_the_contacts_export_offers_only_tenants_where_the_user_may_export(tenant, other_tenant):
    user = make_member(tenant, Role.VIEWER, username="two-hats", is_staff=True)
    Membership.objects.create(tenant=other_tenant, user=user, role=Role.ADMIN)
    client = Client()
    client.force_login(user)
    page = reverse("admin:communications_contactexport_add")

    offered = client.get(page).context["form"].fields["tenant"].queryset
    crafted = client.post(page, {"tenant": tenant.pk, "format": "csv"})
    allowed = client.post(page, {"tenant": other_tenant.pk, "format": "csv"})

    assert list(offered) == [other_tenant]
    assert crafted.status_code == 200
    assert "tenant" in crafted.context["form"].errors
    assert allowed.status_code == 302
    assert list(ContactExport.objects.values_list("tenant", flat=True)) == [other_tenant.pk]


def test_an_admin_cannot_touch_the_owners_api_key_but_the_owner_manages_every_key(tenant, members):
    owners_key, _ = make_api_key(members[Role.OWNER], tenant=tenant, name="owner's")
    admins_key, _ = make_api_key(members[Role.ADMIN], tenant=tenant, name="admin's")
    changelist = reverse("admin:tenants_apikey_changelist")
    as_admin, as_owner = Client(), Client()
    as_admin.force_login(members[Role.ADMIN])
    as_owner.force_login(members[Role.OWNER])

    renamed = as_admin.post(
        reverse("admin:tenants_apikey_change", args=[owners_key.pk]), {"name": "pwned"}
    )
    deleted = as_admin.post(
        reverse("admin:tenants_apikey_delete", args=[owners_key.pk]), {"post": "yes"}
    )
    as_admin.post(changelist, {"action": "revoke_selected", "_selected_action": [owners_key.pk]})
    as_owner.post(changelist, {"action": "revoke_selected", "_selected_action": [admins_key.pk]})

    owners_key.refresh_from_db()
    admins_key.refresh_from_db()
    assert renamed.status_code != 200 or owners_key.name == "owner's"
    assert deleted.status_code != 200
    assert owners_key.name == "owner's"
    assert owners_key.revoked_at is None
    assert admins_key.revoked_at is not None


def test_members_read_only_their_own_notifications_in_the_admin(tenant, members):
    mine = Notification.objects.create(tenant=tenant, user=members[Role.AGENT], title="Mine")
    theirs = Notification.objects.create(tenant=tenant, user=members[Role.OWNER], title="Secret")
    client = Client()
    client.force_login(members[Role.AGENT])

    listed = client.get(reverse("admin:communications_notification_changelist")).content.decode()
    other = client.get(reverse("admin:communications_notification_change", args=[theirs.pk]))

    assert "Mine" in listed
    assert "Secret" not in listed
    assert other.status_code != 200
    assert mine.pk
