"""The workflows admin: the graph drawn, submitting from a form, cancel and retry actions,
automations defined and switched; each page scoped to the user's tenants and roles."""

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from tenants.models import Role, Tenant
from tests.factories import make_member
from workflows.diagram import render_svg
from workflows.models import Automation, Workflow
from workflows.services.automations import create_automation
from workflows.services.running import start_workflow

STEPS = [
    {"name": "lookup", "kind": "jobs.noop", "payload": {"email": "ann@example.com"}},
    {"name": "greet", "kind": "jobs.noop", "needs": ["lookup"]},
    {"name": "sms", "kind": "jobs.noop", "needs": [{"step": "greet", "when": "on_failure"}]},
]


@pytest.fixture(autouse=True)
def _committed(db: None) -> None:
    """Admin pages need no worker: roll each test back."""


def url(model: str, view: str, *args: object) -> str:
    return reverse(f"admin:workflows_{model}_{view}", args=args)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def staff_agent(tenant: Tenant) -> User:
    return make_member(tenant, Role.AGENT, username="sam-agent", is_staff=True)


def test_a_workflows_page_draws_its_graph_and_refreshes_it_while_it_runs(tenant, staff_agent):
    workflow = start_workflow(tenant=tenant, name="Greet", steps=STEPS)
    client = client_for(staff_agent)

    page = client.get(url("workflow", "change", workflow.pk))
    graph = client.get(url("workflow", "graph", workflow.pk))
    listing = client.get(url("workflow", "changelist"))

    html = page.content.decode()
    assert page.status_code == 200
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="workflow-graph"' in html
    assert 'data-step="lookup"' in html
    assert 'data-running="1"' in html
    assert f"/admin/jobs/job/?workflow={workflow.pk}" in html
    assert graph["Content-Type"] == "image/svg+xml"
    assert graph["X-Workflow-Running"] == "1"
    assert graph.content.decode().count('class="step step-') == 3
    assert "step-running" in graph.content.decode()
    assert listing.status_code == 200
    assert "Greet" in listing.content.decode()


def test_a_workflow_is_submitted_from_the_admin_and_a_bad_one_is_refused(tenant, staff_agent):
    client = client_for(staff_agent)
    form = {"tenant": tenant.pk, "name": "From admin", "input": "{}", "on_end": ""}

    bad = client.post(
        url("workflow", "add"), {**form, "steps": json.dumps([{"name": "a", "kind": "x.y"}])}
    )
    good = client.post(url("workflow", "add"), {**form, "steps": json.dumps(STEPS)})

    assert bad.status_code == 200
    assert "a: kind: No job kind is registered as &#x27;x.y&#x27;." in bad.content.decode()
    assert good.status_code == 302
    workflow = Workflow.objects.get()
    assert (workflow.name, workflow.total, workflow.created_by) == ("From admin", 3, staff_agent)
    assert workflow.steps.get(name="lookup").job is not None


def test_cancel_and_retry_actions(tenant, staff_agent):
    workflow = start_workflow(tenant=tenant, name="Greet", steps=STEPS)
    client = client_for(staff_agent)
    changelist = url("workflow", "changelist")

    canceled = client.post(
        changelist, {"action": "cancel_selected", "_selected_action": [workflow.pk]}, follow=True
    )
    retried = client.post(
        changelist, {"action": "retry_selected", "_selected_action": [workflow.pk]}, follow=True
    )

    assert "Canceled 1 workflow(s)." in messages_of(canceled)
    assert "Retried the failed steps of 1 workflow(s)." in messages_of(retried)
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.RUNNING


def test_a_viewer_sees_workflows_but_cannot_submit_or_act(tenant):
    viewer = make_member(tenant, Role.VIEWER, username="vic", is_staff=True)
    workflow = start_workflow(tenant=tenant, name="Greet", steps=STEPS)
    client = client_for(viewer)

    assert client.get(url("workflow", "change", workflow.pk)).status_code == 200
    assert client.get(url("workflow", "add")).status_code == 403
    client.post(
        url("workflow", "changelist"),
        {"action": "cancel_selected", "_selected_action": [workflow.pk]},
    )
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.RUNNING


def test_another_tenants_workflow_and_graph_are_not_found(tenant, other_tenant, staff_agent):
    theirs = start_workflow(tenant=other_tenant, name="Theirs", steps=STEPS)
    client = client_for(staff_agent)

    page = client.get(url("workflow", "change", theirs.pk))
    graph = client.get(url("workflow", "graph", theirs.pk))

    assert page.status_code == 302  # the admin's "does not exist" redirect
    assert graph.status_code == 404
    assert "Theirs" not in client.get(url("workflow", "changelist")).content.decode()


def test_automations_are_defined_and_switched_by_tenant_admins(tenant, tenant_admin):
    client = client_for(tenant_admin)
    form = {
        "tenant": tenant.pk,
        "name": "Welcome",
        "event_type": "contact.created",
        "conditions": "[]",
        "workflow_name": "Welcome a lead",
        "steps": json.dumps(STEPS),
        "enabled": "on",
        "starts-TOTAL_FORMS": "0",
        "starts-INITIAL_FORMS": "0",
    }

    bad = client.post(url("automation", "add"), {**form, "steps": '[{"name": "a", "kind": "x.y"}]'})
    added = client.post(url("automation", "add"), form)
    automation = Automation.objects.get()
    disabled = client.post(
        url("automation", "changelist"),
        {"action": "disable_selected", "_selected_action": [automation.pk]},
        follow=True,
    )

    assert bad.status_code == 200
    assert "a: kind: No job kind is registered as" in bad.content.decode()
    assert added.status_code == 302
    assert automation.created_by == tenant_admin
    assert "Disabled 1 automation(s)." in messages_of(disabled)
    automation.refresh_from_db()
    assert automation.enabled is False
    assert client.get(url("automation", "change", automation.pk)).status_code == 200


def test_an_agent_cannot_define_automations(tenant, staff_agent):
    create_automation(
        tenant=tenant, name="W", event_type="contact.created", workflow_name="w", steps=STEPS
    )
    client = client_for(staff_agent)

    assert client.get(url("automation", "changelist")).status_code == 200
    assert client.get(url("automation", "add")).status_code == 403


def test_the_job_list_filters_by_workflow(tenant, staff_agent):
    mine = start_workflow(tenant=tenant, name="Mine", steps=STEPS)
    start_workflow(tenant=tenant, name="Other", steps=STEPS)
    lookup = mine.steps.get(name="lookup").job
    client = client_for(staff_agent)

    listed = client.get(reverse("admin:jobs_job_changelist"), {"workflow": str(mine.pk)})
    bad = client.get(reverse("admin:jobs_job_changelist"), {"workflow": "nope"})

    assert listed.status_code == 200
    assert list(listed.context["cl"].result_list) == [lookup]
    assert list(bad.context["cl"].result_list) == []


def test_a_workflow_without_steps_draws_an_empty_graph():
    svg = render_svg([])

    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" class="workflow-graph"')
    assert svg.endswith("</svg>")
