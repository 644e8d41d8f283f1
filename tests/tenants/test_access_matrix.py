"""The role matrix (tenants.access) as the attacker meets it: every API endpoint × method × role,
and every admin model × role × page, action and custom view (downloads, exports, previews),
each derived from the one table.

A new endpoint is covered as soon as it names its `access_area`; a new admin model needs one
builder in `ROWS`, a new admin action one in `ACTIONS`, a new custom admin view one case in
`VIEWS` (the guard tests say so), and a start form in place of Django's add page one line in
`START_PAGES`. Actions and views follow their admin's `access_area`, or the area its
`other_areas` names for them.
"""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.options import ActionLocation
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import models, transaction
from django.http import HttpRequest
from django.test import Client, RequestFactory
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
from jobs.admin.jobs import NOT_RERUN
from jobs.models import Batch, Job, JobLog, OnceMarker, Schedule
from reports.models import Report
from tenants import access
from tenants.admin import TenantScopedAdminMixin
from tenants.models import ApiKey, Membership, Role, Tenant
from tenants.permissions import HasTenantRole
from tests.factories import make_api_key, make_member
from tests.jobs import kinds  # noqa: F401 (registers tests.for_admins)
from workflows.models import Automation, Workflow, WorkflowStep

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


# --- The admin: every action and custom view, for every staff user --------------------------------

Builder = Callable[[Tenant, User], models.Model]
Sent = Callable[[Client], Any]


@pytest.fixture
def staff(tenant: Tenant, other_tenant: Tenant, members: dict[str, User]) -> dict[str, User]:
    """The tenant's members by role; `two_hats`, owner of the other tenant and a viewer here;
    `outsider`, owner of the other tenant only; and a superuser."""
    two_hats = make_member(other_tenant, Role.OWNER, username="staff-two-hats", is_staff=True)
    Membership.objects.create(tenant=tenant, user=two_hats, role=Role.VIEWER)
    outsider = make_member(other_tenant, Role.OWNER, username="staff-outsider", is_staff=True)
    superuser = User.objects.create_superuser("staff-operator", "operator@example.com", "pw")
    return {**members, "two_hats": two_hats, "outsider": outsider, "superuser": superuser}


ROLE_HERE: dict[str, str | None] = {
    **{role: role for role in ROLES},
    "two_hats": Role.VIEWER,
    "outsider": None,
}
BEST_ROLE = {**ROLE_HERE, "two_hats": Role.OWNER, "outsider": Role.OWNER}  # in any tenant


def _may(who: str, rule: access.Rule, *, write: bool, tenant_data: bool = True) -> bool:
    """What the matrix lets `who` do to a row of the tenant, its owner's (`tenant_data`), or to
    a page that shows no tenant's data, for which a role in any tenant is enough."""
    if who == "superuser":
        return True
    role = (ROLE_HERE if tenant_data else BEST_ROLE)[who]
    if role is None:
        return False
    needed = rule.write if write else rule.read
    return Role.rank(role) >= Role.rank(needed) and _sees_row(role, rule, models.Model)


def _offered(model_admin: Any, action: str, user: User) -> bool:
    request = RequestFactory().get("/")
    request.user = user
    return action in model_admin.get_actions(request)


def _world(row: models.Model) -> tuple[Any, ...]:
    """What an action may change: the row itself, any job's state, webhook deliveries."""
    return (
        list(type(row)._base_manager.filter(pk=row.pk).values()),
        sorted(Job.objects.values_list("id", "status", "scheduled_at")),
        WebhookDelivery.objects.count(),
    )


def _superuser_request() -> HttpRequest:
    request = RequestFactory().get("/")
    request.user = User(username="enumerator", is_staff=True, is_superuser=True)
    return request


ACTION_CASES = [
    (model, name)
    for model, model_admin in SCOPED.items()
    for name in sorted(model_admin.get_actions(_superuser_request()))
]


def _custom_views() -> dict[str, TenantScopedAdminMixin]:
    """Each URL a scoped admin adds to Django's own (downloads, exports, previews…), by name."""
    found = {}
    for model, model_admin in SCOPED.items():
        standard = {str(p.pattern) for p in admin.ModelAdmin(model, admin.site).get_urls()}
        for pattern in model_admin.get_urls():
            if str(pattern.pattern) not in standard:
                found[str(pattern.name)] = model_admin
    return found


CUSTOM_VIEWS = _custom_views()


def _short(url_name: str, model_admin: TenantScopedAdminMixin) -> str:
    return url_name.removeprefix(f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_")


def _as(model: type[models.Model], **fields: Any) -> Builder:
    """`ROWS[model]`'s row with `fields` set: the state in which an action has something to do."""

    def build(tenant: Tenant, owner: User) -> models.Model:
        row = ROWS[model](tenant, owner)
        type(row)._base_manager.filter(pk=row.pk).update(**fields)
        row.refresh_from_db()
        return row

    return build


def _batch_with_a_waiting_member(tenant: Tenant, owner: User) -> Batch:
    batch = Batch.objects.create(tenant=tenant, total=1)
    job = _job(tenant, owner)
    Job.objects.filter(pk=job.pk).update(batch=batch, status=Job.Status.QUEUED)
    return batch


def _workflow_with_a_failed_step(tenant: Tenant, owner: User) -> Workflow:
    workflow = Workflow.objects.create(
        tenant=tenant, name="onboarding", status=Workflow.Status.FAILED, total=1
    )
    job = _job(tenant, owner)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED)
    WorkflowStep.objects.create(
        workflow=workflow, name="a", position=0, kind=job.kind, status="failed", job=job
    )
    return workflow


def _membership_of_a_viewer(tenant: Tenant, owner: User) -> Membership:
    return Membership.objects.get(tenant=tenant, user=make_member(tenant, Role.VIEWER))


DELETED_BY_SELECTION = [
    ApiKey,
    OnceMarker,
    Schedule,
    Contact,
    WebhookEndpoint,
    Sender,
    MessageTemplate,
    Report,
    Workflow,
    Automation,
    AlertRule,
    DigestSubscription,
]
SOON = timezone.now() + timedelta(hours=1)

# Each admin action with a row it has something to do to.
ACTIONS: dict[tuple[type[models.Model], str], Builder] = {
    **{(model, "delete_selected"): ROWS[model] for model in DELETED_BY_SELECTION},
    (Membership, "delete_selected"): _membership_of_a_viewer,
    (ApiKey, "revoke_selected"): ROWS[ApiKey],
    (Batch, "cancel"): _batch_with_a_waiting_member,
    (Job, "cancel"): _as(Job, status=Job.Status.QUEUED),
    (Job, "retry"): _as(Job, status=Job.Status.FAILED),
    (Job, "retry_now"): _as(Job, status=Job.Status.RETRYING, scheduled_at=SOON),
    (Job, "discard"): _as(Job, status=Job.Status.FAILED),
    (Schedule, "enable_selected"): _as(Schedule, enabled=False),
    (Schedule, "disable_selected"): ROWS[Schedule],
    (Schedule, "run_now_selected"): ROWS[Schedule],
    (Campaign, "start_selected"): ROWS[Campaign],
    (Campaign, "cancel_selected"): ROWS[Campaign],
    (Contact, "opt_out_selected"): ROWS[Contact],
    (Contact, "opt_in_selected"): _as(Contact, opted_out=True),
    (WebhookEndpoint, "rotate_secret_selected"): ROWS[WebhookEndpoint],
    (WebhookEndpoint, "send_test_selected"): ROWS[WebhookEndpoint],
    (WebhookDelivery, "replay_selected"): _as(WebhookDelivery, status="failed"),
    (Report, "regenerate_selected"): _as(Report, status="succeeded"),
    (Workflow, "cancel_selected"): ROWS[Workflow],
    (Workflow, "retry_selected"): _workflow_with_a_failed_step,
    (Automation, "enable_selected"): _as(Automation, enabled=False),
    (Automation, "disable_selected"): ROWS[Automation],
    (AlertRule, "enable_selected"): _as(AlertRule, enabled=False),
    (AlertRule, "disable_selected"): ROWS[AlertRule],
    (AlertRule, "silence_hour"): ROWS[AlertRule],
    (AlertRule, "unsilence_selected"): _as(AlertRule, silenced_until=SOON),
    (Incident, "acknowledge_selected"): ROWS[Incident],
    (Incident, "silence_hour"): ROWS[Incident],
    (Incident, "silence_day"): ROWS[Incident],
}


@dataclass(frozen=True)
class View:
    """How to call a custom admin view on the tenant's data, and whether that reached it."""

    # (tenant, its owner) -> (send the request as a client, did the answer reach the data?)
    probe: Callable[[Tenant, User], tuple[Sent, Callable[[Any], bool]]]
    write: bool = False  # a POST that changes or exports: the area's write role
    tenant_data: bool = True  # False: shows no tenant's data, so a role in any tenant will do


SECRET = b"email\nconfidential@example.com\n"


def _served(response: Any) -> bool:
    if response.status_code != 200:
        return False
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return bool(body)


def _file_download(model: type[models.Model], field: str) -> View:
    def probe(tenant: Tenant, owner: User) -> tuple[Sent, Callable[[Any], bool]]:
        row = model._base_manager.create(tenant=tenant, format="csv")
        getattr(row, field).save("contacts.csv", ContentFile(SECRET))
        opts = model._meta
        path = reverse(f"admin:{opts.app_label}_{opts.model_name}_download", args=[row.pk, field])
        return (lambda client: client.get(path)), _served

    return View(probe)


def _page(
    url_name: str, build: Builder | None = None, *, args: tuple[str, ...] = (), **options: Any
) -> View:
    def probe(tenant: Tenant, owner: User) -> tuple[Sent, Callable[[Any], bool]]:
        path = reverse(f"admin:{url_name}", args=[build(tenant, owner).pk] if build else args)
        return (lambda client: client.get(path)), _served

    return View(probe, **options)


def _report_file(tenant: Tenant, owner: User) -> Report:
    report = _as(Report, status="succeeded")(tenant, owner)
    assert isinstance(report, Report)
    report.file.save("activity.csv", ContentFile(b"day,jobs\n"))
    return report


def _has_context(response: Any, name: str) -> bool:
    return response.status_code == 200 and response.context is not None and name in response.context


def _dry_run_that_succeeded(tenant: Tenant, owner: User) -> ContactImport:
    dry_run = _as(ContactImport, status="succeeded", dry_run=True, format="csv")(tenant, owner)
    assert isinstance(dry_run, ContactImport)
    dry_run.file.save("contacts.csv", ContentFile(SECRET))
    return dry_run


# Each custom admin view (by URL name) with a request that reaches the tenant's data.
VIEWS: dict[str, View] = {
    "communications_contactimport_download": _file_download(ContactImport, "file"),
    "communications_contactexport_download": _file_download(ContactExport, "file"),
    "communications_contactimport_progress": _page(
        "communications_contactimport_progress", ROWS[ContactImport]
    ),
    "communications_contactexport_progress": _page(
        "communications_contactexport_progress", ROWS[ContactExport]
    ),
    "communications_contactimport_run": _page(
        "communications_contactimport_run", _dry_run_that_succeeded, write=True
    ),
    "communications_messagetemplate_preview": _page(
        "communications_messagetemplate_preview", ROWS[MessageTemplate]
    ),
    "communications_messagetemplate_builtins": _page(
        "communications_messagetemplate_builtins", tenant_data=False
    ),
    "communications_messagetemplate_builtin_preview": _page(
        "communications_messagetemplate_builtin_preview",
        args=("welcome", "email"),
        tenant_data=False,
    ),
    "reports_report_download": _page("reports_report_download", _report_file),
    "workflows_workflow_graph": _page("workflows_workflow_graph", _workflow_with_a_failed_step),
}


def test_every_admin_action_and_custom_view_has_a_case_and_names_an_area_of_the_matrix():
    named = {name for _, name in ACTION_CASES} | {
        _short(name, model_admin) for name, model_admin in CUSTOM_VIEWS.items()
    }

    assert set(ACTION_CASES) == set(ACTIONS)
    assert set(CUSTOM_VIEWS) == set(VIEWS)
    for model, name in ACTION_CASES:
        assert SCOPED[model].area_of(name) in access.MATRIX, (model, name)
    for name, model_admin in CUSTOM_VIEWS.items():
        assert model_admin.area_of(_short(name, model_admin)) in access.MATRIX, name
    for model_admin in SCOPED.values():
        assert set(model_admin.other_areas) <= named, model_admin
        # The cases act through the changelist: an action only on the change form needs its own.
        on_form = model_admin.get_actions(_superuser_request(), ActionLocation.CHANGE_FORM)
        assert set(on_form) <= set(model_admin.get_actions(_superuser_request())), model_admin


@pytest.mark.parametrize(
    ("model", "action"), ACTION_CASES, ids=[f"{m.__name__}.{a}" for m, a in ACTION_CASES]
)
def test_each_staff_user_meets_the_matrix_on_every_admin_action(tenant, staff, model, action):
    rule = access.rule(SCOPED[model].area_of(action))
    row = ACTIONS[model, action](tenant, staff[Role.OWNER])
    meta = model._meta
    changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    chosen = {"action": action, "index": "0", "_selected_action": [str(row.pk)]}
    confirmed = {**chosen, "confirm": "yes", "post": "yes"}  # the jobs' and deletes' second step
    before = _world(row)

    for who, user in staff.items():
        client = Client()
        client.force_login(user)
        with transaction.atomic():
            response = client.post(changelist, confirmed)
            changed = _world(row) != before
            transaction.set_rollback(True)

        assert response.status_code in (200, 302, 403), (who, response.status_code)
        assert changed is _may(who, rule, write=True), (who, response.status_code)
        # Offered where the user may take it in some tenant, the rows it acts on aside.
        best = BEST_ROLE.get(who, Role.OWNER)
        may_somewhere = best is not None and Role.rank(best) >= Role.rank(rule.write)
        assert _offered(SCOPED[model], action, user) is may_somewhere, who


@pytest.mark.parametrize("name", list(VIEWS))
def test_each_staff_user_meets_the_matrix_on_every_custom_admin_view(tenant, staff, name):
    model_admin, view = CUSTOM_VIEWS[name], VIEWS[name]
    rule = access.rule(model_admin.area_of(_short(name, model_admin)))
    send, reached = view.probe(tenant, staff[Role.OWNER])

    for who, user in staff.items():
        client = Client()
        client.force_login(user)
        with transaction.atomic():
            response = send(client)
            got = reached(response)
            transaction.set_rollback(True)

        expected = _may(who, rule, write=view.write, tenant_data=view.tenant_data)
        assert got is expected, (who, response.status_code)
        assert response.status_code < 500


EDITABLE_LISTS = [
    (model, field) for model, model_admin in SCOPED.items() for field in model_admin.list_editable
]


@pytest.mark.parametrize(
    ("model", "field"), EDITABLE_LISTS, ids=[f"{m.__name__}.{f}" for m, f in EDITABLE_LISTS]
)
def test_each_staff_user_meets_the_matrix_on_every_field_edited_in_a_changelist(
    tenant, staff, model, field
):
    rule = SCOPED[model].access_rule
    row = ROWS[model](tenant, staff[Role.OWNER])
    flipped = not getattr(row, field)  # a boolean: a new kind of field needs a new value here
    meta = model._meta
    changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    form = {"form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "_save": "Save"}
    form[f"form-0-{meta.pk.name}"] = str(row.pk)
    if flipped:
        form[f"form-0-{field}"] = "on"  # an unticked box is simply left out
    before = _world(row)

    for who, user in staff.items():
        client = Client()
        client.force_login(user)
        with transaction.atomic():
            response = client.post(changelist, form)
            changed = _world(row) != before
            transaction.set_rollback(True)

        assert response.status_code in (200, 302, 403), (who, response.status_code)
        assert changed is _may(who, rule, write=True), (who, response.status_code)


# Django's add page replaced by a form that starts a job (URL name, model): writers only.
START_PAGES: list[tuple[str, type[models.Model]]] = [
    ("communications_contactimport_add", ContactImport),
    ("communications_contactexport_add", ContactExport),
]


@pytest.mark.parametrize(("name", "model"), START_PAGES, ids=lambda v: str(v))
def test_each_staff_role_meets_the_matrix_on_every_start_form(tenant, members, name, model):
    needed = access.required_role(SCOPED[model].access_area, write=True)

    for role, user in members.items():
        client = Client()
        client.force_login(user)
        response = client.get(reverse(f"admin:{name}"))
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


# --- Running a job again asks what enqueueing it asks (jobs.services.jobs.check_rerun) --------

INTERNAL = "reports.generate_report"


def _ended(tenant: Tenant, kind: str, status: str = Job.Status.FAILED) -> Job:
    due = timezone.now() + timedelta(hours=1) if status == Job.Status.RETRYING else None
    return Job.objects.create(
        tenant=tenant, kind=kind, queue="default", timeout=60, status=status, scheduled_at=due
    )


def _api(user: User, tenant: Tenant, path: str, body: dict[str, Any] | None = None) -> Any:
    client = APIClient()
    client.force_authenticate(user)
    return client.post(f"/api/v1/jobs/{path}", body or {}, format="json", HTTP_X_TENANT=tenant.slug)


@pytest.mark.parametrize(("path", "status"), [("retry", "failed"), ("retry-now", "retrying")])
def test_no_member_runs_a_job_of_an_internal_kind_again_through_the_api(
    tenant, members, path, status
):
    job = _ended(tenant, INTERNAL, status)

    answers = [_api(members[role], tenant, f"{job.pk}/{path}/") for role in ROLES[1:]]
    bulk = _api(members[Role.OWNER], tenant, "bulk-retry/", {"ids": [str(job.pk)]})

    assert [answer.status_code for answer in answers] == [403, 403, 403]
    assert "is internal" in answers[-1].json()["detail"]
    assert bulk.json() == {"retried": 0, "skipped": 1}
    job.refresh_from_db()
    assert job.status == status


def test_an_operator_retries_a_job_of_an_internal_kind(tenant):
    operator = User.objects.create_superuser("operator", "operator@example.com", "pw")
    job = _ended(tenant, INTERNAL)

    response = _api(operator, tenant, f"{job.pk}/retry/")

    assert response.status_code == 202
    job.refresh_from_db()
    assert job.status != Job.Status.FAILED


def test_running_a_public_kind_again_needs_the_role_that_may_enqueue_it(tenant, members):
    job = _ended(tenant, "tests.for_admins")

    by_agent = _api(members[Role.AGENT], tenant, f"{job.pk}/retry/")
    by_admin = _api(members[Role.ADMIN], tenant, f"{job.pk}/retry/")

    assert by_agent.status_code == 403
    assert "needs the admin role" in by_agent.json()["detail"]
    assert by_admin.status_code == 202


@pytest.mark.parametrize(("action", "status"), [("retry", "failed"), ("retry_now", "retrying")])
def test_the_admins_retry_actions_leave_an_internal_kinds_job_to_operators(
    tenant, members, admin_client, action, status
):
    job = _ended(tenant, INTERNAL, status)
    owner = Client()
    owner.force_login(members[Role.OWNER])
    changelist = reverse("admin:jobs_job_changelist")
    chosen = {"action": action, "index": "0", "_selected_action": [str(job.pk)], "confirm": "yes"}

    refused = owner.post(changelist, chosen, follow=True)
    job.refresh_from_db()
    status_after_owner = job.status
    admin_client.post(changelist, chosen)
    job.refresh_from_db()

    assert status_after_owner == status
    assert NOT_RERUN in refused.content.decode()
    assert job.status != status


def test_only_operators_pause_and_resume_a_tenants_work_in_the_admin(tenant, members, admin_client):
    changelist = reverse("admin:tenants_tenant_changelist")
    chosen = {"action": "pause_work", "index": "0", "_selected_action": [str(tenant.pk)]}
    owner = Client()
    owner.force_login(members[Role.OWNER])

    owner.post(changelist, chosen)
    tenant.refresh_from_db()
    paused_by_the_owner = tenant.paused_queues
    admin_client.post(changelist, chosen)
    tenant.refresh_from_db()

    assert paused_by_the_owner == []
    assert tenant.paused_queues == ["*"]
