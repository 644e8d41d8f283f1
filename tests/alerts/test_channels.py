"""Where alerts go: signed webhook events to the tenant's own endpoints and Slack-compatible
URLs, each sent by a real worker to a real receiver on 127.0.0.1."""

import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from alerts.models import Condition
from alerts.services.rules import create_rule
from communications.models import WebhookDelivery
from communications.services.webhooks import create_endpoint
from jobs.models import Job
from jobs.services.jobs import enqueue_job
from tests.communications.webhooks_receiver import (
    Receiver,
    receiver_fixture,  # noqa: F401
    webhook_settings_fixture,  # noqa: F401
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhook_settings")]


def test_a_slack_recipient_gets_the_opening_and_the_resolution_once_each(
    receiver: Receiver, tenant, check, run_worker, django_capture_on_commit_callbacks
):
    receiver.verify = lambda *args: True  # Slack-compatible URLs take unsigned posts
    create_rule(
        tenant=None,
        name="Nobody serves a queue",
        condition=Condition.NO_WORKER,
        notify_admins=False,
        publish_webhooks=False,
        recipients=[{"level": 0, "channel": "slack", "url": receiver.url("/slack")}],
    )
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_job(tenant=tenant, kind="jobs.noop", payload={})

    check()
    run_worker(["webhooks"])  # the post goes; the noop job still waits unserved
    check(minutes=1)
    run_worker()
    check(minutes=2)
    run_worker(["webhooks"])

    texts = [json.loads(r.body)["text"] for r in receiver.requests]
    assert [r.path for r in receiver.requests] == ["/slack", "/slack"]
    assert texts[0].startswith("*Alert: Nobody serves a queue (platform)*\nNo live worker for")
    assert texts[1].startswith("*Resolved: Nobody serves a queue (platform)*")


def test_a_slack_url_inside_our_network_is_refused(settings):
    settings.CONVEYOR_WEBHOOK_ALLOWED_NETWORKS = []

    with pytest.raises(ValidationError, match="private address"):
        create_rule(
            tenant=None,
            name="Leaky",
            condition=Condition.NO_WORKER,
            recipients=[{"level": 0, "channel": "slack", "url": "http://10.0.0.7/hook"}],
        )


def test_alert_events_are_signed_and_reach_only_the_rules_tenants_endpoints(
    receiver: Receiver,
    tenant,
    other_tenant,
    check,
    run_worker,
    django_capture_on_commit_callbacks,
):
    ours = create_endpoint(
        tenant=tenant, url=receiver.url("/acme"), event_types=["alert.opened", "alert.resolved"]
    )
    create_endpoint(tenant=other_tenant, url=receiver.url("/globex"), event_types=["*"])
    receiver.secrets = [ours.secret]
    create_rule(
        tenant=tenant,
        name="Acme backlog",
        condition=Condition.OLDEST_WAITING,
        threshold=60,
        notify_admins=False,
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    Job.objects.filter(pk=job.pk).update(enqueued_at=timezone.now() - timedelta(minutes=5))

    check()
    run_worker(["webhooks"])

    [request] = receiver.requests
    body = json.loads(request.body)
    assert (request.path, request.verified) == ("/acme", True)
    assert (body["type"], body["tenant"]) == ("alert.opened", "acme")
    assert body["data"]["rule"]["name"] == "Acme backlog"
    assert body["data"]["figures"]["waiting"] == 1
    assert not WebhookDelivery.objects.filter(tenant=other_tenant).exists()
