"""The workflows and automations API: submit, read with steps and edges, cancel, retry; every
role and tenant as the role matrix says; 400s that name the step and field."""

from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from jobs.models import Job
from tenants.models import Role, Tenant
from tests.factories import UserFactory, make_member
from workflows.models import Automation, Workflow
from workflows.services.automations import create_automation
from workflows.services.running import start_workflow

STEPS = [
    {"name": "lookup", "kind": "jobs.noop", "payload": {"email": "ann@example.com"}},
    {
        "name": "greet",
        "kind": "jobs.noop",
        "payload": {"to": "{{ steps.lookup.result.email }}"},
        "needs": ["lookup"],
    },
    {
        "name": "fallback",
        "kind": "jobs.noop",
        "needs": [{"step": "greet", "when": "on_failure"}],
    },
]


@pytest.fixture(autouse=True)
def _committed(db: None) -> None:
    """The API's answers need no worker: roll each test back, which is faster."""


def submit(client: APIClient, steps: Any, **extra: Any) -> Any:
    return client.post(
        "/api/v1/workflows/", {"name": "Greet", "steps": steps, **extra}, format="json"
    )


def test_a_submitted_workflow_answers_with_its_steps_and_edges(api_client, agent):
    api_client.force_authenticate(agent)

    response = submit(api_client, STEPS, input={"source": "web"})

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["total"], body["done"], body["progress"]) == ("running", 3, 0, 0)
    assert [(s["name"], s["status"]) for s in body["steps"]] == [
        ("lookup", "running"),
        ("greet", "waiting"),
        ("fallback", "waiting"),
    ]
    assert body["edges"] == [
        {"source": "lookup", "target": "greet", "when": "on_success"},
        {"source": "greet", "target": "fallback", "when": "on_failure"},
    ]
    assert body["input"] == {"source": "web"}
    assert body["steps"][0]["job_status"] == "queued"
    jobs = api_client.get(f"/api/v1/jobs/?workflow={body['id']}").json()["results"]
    assert [job["id"] for job in jobs] == [body["steps"][0]["job"]]


@pytest.mark.parametrize(
    ("steps", "errors"),
    [
        (
            [{"name": "a", "kind": "nope.nope"}],
            {"a": {"kind": ["No job kind is registered as 'nope.nope'."]}},
        ),
        (
            [{"name": "a", "kind": "jobs.sleep", "payload": {"seconds": "soon"}}],
            {"a": {"payload": {"seconds": ["A valid number is required."]}}},
        ),
        (
            [
                {"name": "a", "kind": "jobs.noop", "needs": ["b"]},
                {"name": "b", "kind": "jobs.noop", "needs": ["a"]},
            ],
            {"a": {"needs": ["These steps wait for each other: a → b → a."]}},
        ),
        (
            [{"name": "a", "kind": "jobs.noop", "needs": ["ghost"]}],
            {"a": {"needs": ["There is no step 'ghost'."]}},
        ),
        (
            [
                {"name": "a", "kind": "jobs.noop"},
                {"name": "b", "kind": "jobs.noop", "payload": {"x": "{{ steps.c.result }}"}},
                {"name": "c", "kind": "jobs.noop"},
            ],
            {
                "b": {
                    "payload": {
                        "steps": ["steps.c is not a step this one waits for (directly or not)."]
                    }
                }
            },
        ),
        (
            [{"name": "a", "kind": "jobs.noop", "condition": [{"field": "x", "op": "like"}]}],
            {
                "a": {
                    "condition": [
                        "Check 1: op is one of eq, ne, gt, gte, lt, lte, in, not_in, contains, "
                        "exists, not_exists."
                    ]
                }
            },
        ),
        (
            [{"name": "a", "kind": "jobs.reconcile_jobs"}],
            {
                "a": {
                    "kind": [
                        "'jobs.reconcile_jobs' is internal housekeeping: a workflow cannot run it."
                    ]
                }
            },
        ),
        (
            [{"name": "a", "kind": "jobs.noop"}, {"name": "a", "kind": "jobs.noop"}],
            {"a": {"name": ["Another step has this name."]}},
        ),
    ],
    ids=[
        "unknown kind",
        "bad payload",
        "cycle",
        "unknown need",
        "unknown reference",
        "bad op",
        "internal kind",
        "twice",
    ],
)
def test_a_bad_graph_answers_400_naming_the_step_and_field(api_client, agent, steps, errors):
    api_client.force_authenticate(agent)

    response = submit(api_client, steps)

    assert response.status_code == 400
    assert response.json() == {"steps": errors}
    assert not Workflow.objects.exists()
    assert not Job.objects.exists()


def test_a_bad_callback_answers_400(api_client, agent):
    api_client.force_authenticate(agent)

    response = submit(api_client, STEPS, on_end={"kind": "jobs.sleep", "payload": {}})

    assert response.status_code == 400
    assert response.json() == {"on_end": {"payload": {"seconds": ["This field is required."]}}}


def test_cancel_and_retry_through_the_api(api_client, agent, tenant):
    api_client.force_authenticate(agent)
    workflow_id = submit(api_client, STEPS).json()["id"]

    early_retry = api_client.post(f"/api/v1/workflows/{workflow_id}/retry/")
    canceled = api_client.post(f"/api/v1/workflows/{workflow_id}/cancel/")
    again = api_client.post(f"/api/v1/workflows/{workflow_id}/cancel/")
    retried = api_client.post(f"/api/v1/workflows/{workflow_id}/retry/")

    assert early_retry.status_code == 409
    assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")
    assert {s["status"] for s in canceled.json()["steps"]} == {"canceled"}
    assert again.status_code == 200
    assert (retried.status_code, retried.json()["status"]) == (202, "running")
    assert [s["status"] for s in retried.json()["steps"]] == ["running", "waiting", "waiting"]


def test_another_tenants_workflow_and_a_missing_one_answer_alike(api_client, agent, other_tenant):
    theirs = start_workflow(tenant=other_tenant, name="theirs", steps=STEPS)
    api_client.force_authenticate(agent)

    for path in ("/api/v1/workflows/{}/", "/api/v1/workflows/{}/cancel/"):
        method = api_client.post if path.endswith("cancel/") else api_client.get
        foreign = method(path.format(theirs.pk))
        missing = method(path.format("00000000-0000-4000-8000-000000000000"))
        assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json())
        assert foreign.status_code == 404
    assert Workflow.objects.get(pk=theirs.pk).status == "running"
    listed = api_client.get("/api/v1/workflows/").json()
    assert listed["count"] == 0
    assert api_client.get(f"/api/v1/jobs/?workflow={theirs.pk}").json()["results"] == []


def test_the_workflow_list_costs_the_same_queries_for_one_or_many(
    api_client, agent, tenant, django_assert_num_queries
):
    for _ in range(5):
        start_workflow(tenant=tenant, name="w", steps=STEPS)
    api_client.force_authenticate(agent)

    with django_assert_num_queries(3):  # the memberships, the count, the page
        response = api_client.get("/api/v1/workflows/?status=running")

    assert response.json()["count"] == 5


AUTOMATION: dict[str, Any] = {
    "name": "Welcome",
    "event_type": "contact.created",
    "conditions": [{"field": "data.contact.company", "op": "ne", "value": "Competitor"}],
    "workflow_name": "Welcome a lead",
    "steps": STEPS,
}


def test_automations_are_created_disabled_and_deleted_by_admins(api_client, tenant_admin):
    api_client.force_authenticate(tenant_admin)

    created = api_client.post("/api/v1/automations/", AUTOMATION, format="json")
    automation_id = created.json()["id"]
    disabled = api_client.patch(
        f"/api/v1/automations/{automation_id}/", {"enabled": False}, format="json"
    )
    bad = api_client.post(
        "/api/v1/automations/",
        {**AUTOMATION, "name": "x", "event_type": "lead.won", "conditions": [{"op": "eq"}]},
        format="json",
    )
    taken = api_client.post("/api/v1/automations/", AUTOMATION, format="json")
    deleted = api_client.delete(f"/api/v1/automations/{automation_id}/")

    assert created.status_code == 201, created.json()
    assert created.json()["recent_starts"] == []
    assert (disabled.status_code, disabled.json()["enabled"]) == (200, False)
    assert bad.status_code == 400
    assert set(bad.json()) == {"event_type", "conditions"}
    assert "contact.created" in bad.json()["event_type"][0]
    assert "workflow.finished" not in bad.json()["event_type"][0]
    assert taken.json() == {"name": ["Another automation has this name."]}
    assert deleted.status_code == 204
    assert not Automation.objects.exists()


# --- The role matrix ---------------------------------------------------------------------------

ROLES = ["viewer", "agent", "admin", "owner", "superuser", "anonymous"]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {workflow} and {automation} are the target's ids
    needs: str
    ok: int = 200
    body: Any = None
    status: str = "running"  # the target workflow's, so that the action can succeed

    @property
    def about_an_object(self) -> bool:
        return "{" in self.path

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = [
    Endpoint("get", "/api/v1/workflows/", Role.VIEWER),
    Endpoint("post", "/api/v1/workflows/", Role.AGENT, 201, {"name": "w", "steps": STEPS}),
    Endpoint("get", "/api/v1/workflows/{workflow}/", Role.VIEWER),
    Endpoint("post", "/api/v1/workflows/{workflow}/cancel/", Role.AGENT),
    Endpoint("post", "/api/v1/workflows/{workflow}/retry/", Role.AGENT, 202, status="failed"),
    Endpoint("get", "/api/v1/automations/", Role.VIEWER),
    Endpoint("post", "/api/v1/automations/", Role.ADMIN, 201, {**AUTOMATION, "name": "new"}),
    Endpoint("get", "/api/v1/automations/{automation}/", Role.VIEWER),
    Endpoint("patch", "/api/v1/automations/{automation}/", Role.ADMIN, body={"enabled": False}),
    Endpoint("delete", "/api/v1/automations/{automation}/", Role.ADMIN, 204),
]


def expected_status(endpoint: Endpoint, role: str, tenant: str) -> int:
    if role == "anonymous":
        return 401
    if tenant == "other" and role != "superuser" and not endpoint.about_an_object:
        return 404  # the X-Tenant header names a tenant the caller is not in
    if role != "superuser" and Role.rank(role) < Role.rank(endpoint.needs):
        return 403
    if tenant == "other" and endpoint.about_an_object:
        return 404  # the object belongs to another tenant
    return endpoint.ok


def caller(role: str, tenant: Tenant) -> Any:
    if role == "anonymous":
        return None
    if role == "superuser":
        return UserFactory.create(is_superuser=True, is_staff=True)
    return make_member(tenant, role)


@pytest.mark.parametrize("tenant_case", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_each_endpoint_answers_each_role_and_tenant_as_the_role_matrix_says(
    api_client, tenant, other_tenant, endpoint, role, tenant_case
):
    owner = other_tenant if tenant_case == "other" and endpoint.about_an_object else tenant
    workflow = start_workflow(tenant=owner, name="target", steps=STEPS)
    if endpoint.status == "failed":
        Workflow.objects.filter(pk=workflow.pk).update(status="failed", done=3)
        workflow.steps.update(status="skipped")
        workflow.steps.filter(name="lookup").update(status="failed")
    automation = create_automation(tenant=owner, **AUTOMATION)
    header = "globex" if tenant_case == "other" and not endpoint.about_an_object else "acme"
    user = caller(role, tenant)
    if user is not None:
        api_client.force_authenticate(user)

    path = endpoint.path.format(workflow=workflow.pk, automation=automation.pk)
    response = getattr(api_client, endpoint.method)(
        path, endpoint.body, format="json", HTTP_X_TENANT=header
    )

    assert response.status_code == expected_status(endpoint, role, tenant_case), response.content
