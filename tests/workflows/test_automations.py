"""Automations started by real events, once per event; the built-in step kinds; a schedule's
start; and that a step can never reach another tenant's objects."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from communications.models import Notification
from communications.providers import memory_outbox
from communications.services.contacts import create_contact
from communications.services.events import publish_event
from jobs.models import Job
from jobs.services.jobs import enqueue_job
from tests.factories import make_member
from tests.workflows.conftest import statuses
from workflows.models import Automation, AutomationStart, Workflow
from workflows.services.automations import create_automation

WELCOME = [
    {"name": "wait", "kind": "workflows.wait", "delay": 1},
    {
        "name": "welcome",
        "kind": "workflows.send_message",
        "payload": {"contact_id": "{{ input.contact.id }}", "template": "welcome"},
        "needs": ["wait"],
    },
    {
        "name": "sms",
        "kind": "workflows.send_message",
        "payload": {
            "contact_id": "{{ input.contact.id }}",
            "template": "welcome",
            "channel": "sms",
        },
        "needs": [{"step": "welcome", "when": "on_failure"}],
    },
]


def ended(tenant):
    return lambda: not Workflow.objects.for_tenant(tenant).filter(status="running").exists()


def test_contact_created_starts_the_welcome_automation_once_per_event(tenant, work_until):
    create_automation(
        tenant=tenant,
        name="Welcome",
        event_type="contact.created",
        conditions=[{"field": "data.contact.company", "op": "ne", "value": "Competitor"}],
        workflow_name="Welcome a lead",
        steps=WELCOME,
    )
    emailed = create_contact(tenant=tenant, name="Ann Lee", email="ann@example.com")
    texted = create_contact(tenant=tenant, name="Bob Ray", phone="+14155550123")
    create_contact(tenant=tenant, name="Eve", email="eve@example.com", company="Competitor")
    first_start = Workflow.objects.get(input__contact__id=emailed.pk)
    publish_event(tenant, "contact.created", first_start.input)  # the same event again

    work_until(ended(tenant), timeout=30)

    workflows = Workflow.objects.for_tenant(tenant).order_by("created_at")
    assert [w.status for w in workflows] == ["succeeded", "succeeded"]
    assert AutomationStart.objects.count() == 2
    assert Automation.objects.get().start_count == 2
    first, second = workflows
    assert statuses(first) == {"wait": "succeeded", "welcome": "succeeded", "sms": "skipped"}
    assert statuses(second) == {"wait": "succeeded", "welcome": "failed", "sms": "succeeded"}
    assert [m.to for m in mail.outbox] == [["ann@example.com"]]
    assert mail.outbox[0].subject == "Welcome to Acme"
    assert [entry["to"] for entry in memory_outbox()] == [texted.phone]
    assert first == first_start


def test_a_disabled_automation_starts_nothing(tenant, work_until):
    automation = create_automation(
        tenant=tenant, name="Off", event_type="contact.created", workflow_name="w", steps=WELCOME
    )
    automation.enabled = False
    automation.save()

    create_contact(tenant=tenant, name="Ann", email="ann@example.com")

    assert not Workflow.objects.exists()


def test_a_step_never_reaches_another_tenants_contact(tenant, other_tenant, start, run_workflow):
    theirs = create_contact(tenant=other_tenant, name="Zed", email="zed@globex.example")
    workflow = start(
        [
            {
                "name": "tag",
                "kind": "workflows.tag_contact",
                "payload": {"contact_id": theirs.pk, "add": ["x"]},
            },
            {
                "name": "mail",
                "kind": "workflows.send_message",
                "payload": {"contact_id": theirs.pk, "template": "welcome"},
            },
        ]
    )

    run_workflow(workflow)

    assert statuses(workflow) == {"tag": "failed", "mail": "failed"}
    errors = set(
        Job.objects.filter(workflow_step__workflow=workflow).values_list("error_message", flat=True)
    )
    assert errors == {f"No contact {theirs.pk} in this tenant."}
    theirs.refresh_from_db()
    assert theirs.tags == []
    assert mail.outbox == []


def test_tags_and_member_notifications_as_steps(tenant, start, run_workflow, run_worker):
    contact = create_contact(tenant=tenant, name="Ann", email="ann@example.com", tags=["lead"])
    make_member(tenant, "admin")
    make_member(tenant, "viewer")
    workflow = start(
        [
            {
                "name": "tag",
                "kind": "workflows.tag_contact",
                "payload": {"contact_id": contact.pk, "add": ["vip"], "remove": ["lead"]},
            },
            {
                "name": "tell",
                "kind": "workflows.notify_members",
                "payload": {"title": "{{ steps.tag.result.tags|join:',' }}", "min_role": "admin"},
                "needs": ["tag"],
            },
        ]
    )

    run_workflow(workflow)
    run_worker()  # the notifications' own job

    contact.refresh_from_db()
    assert contact.tags == ["vip"]
    assert list(Notification.objects.values_list("title", flat=True)) == ["vip"]


@pytest.fixture
def receiver(settings):
    settings.CONVEYOR_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_a_webhook_step_posts_earlier_results(start, run_workflow, receiver):
    url, received = receiver
    workflow = start(
        [
            {"name": "a", "kind": "jobs.noop", "payload": {"score": 7}},
            {
                "name": "call",
                "kind": "workflows.call_webhook",
                "payload": {"url": url, "body": {"score": "{{ steps.a.result.score }}"}},
                "needs": ["a"],
            },
        ]
    )

    run_workflow(workflow)

    assert workflow.status == "succeeded"
    assert received == [{"score": 7}]


def test_a_webhook_step_refuses_a_private_address(start, run_workflow):
    workflow = start(
        [
            {
                "name": "call",
                "kind": "workflows.call_webhook",
                "payload": {"url": "http://10.0.0.1/x"},
            }
        ]
    )

    run_workflow(workflow)

    assert workflow.status == "failed"


def test_a_schedules_job_starts_a_workflow_once(tenant, run_worker, work_until):
    job = enqueue_job(
        tenant=tenant,
        kind="workflows.start_workflow",
        payload={"name": "Nightly", "steps": [{"name": "a", "kind": "jobs.noop"}]},
    )

    work_until(lambda: Workflow.objects.filter(status="succeeded").exists())

    workflow = Workflow.objects.get()
    assert (workflow.name, workflow.trigger_job_id) == ("Nightly", job.pk)
    job.refresh_from_db()
    assert job.result == {"workflow_id": str(workflow.pk)}


def test_a_schedule_payload_with_a_bad_graph_is_refused(tenant):
    from rest_framework.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        enqueue_job(
            tenant=tenant,
            kind="workflows.start_workflow",
            payload={"name": "x", "steps": [{"name": "a", "kind": "nope.nope"}]},
        )

    assert "nope.nope" in str(refused.value.detail)
