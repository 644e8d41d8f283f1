"""Publishing events: on commit, one delivery and one job per subscribed endpoint; job events."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from communications.models import EventType, WebhookDelivery, WebhookEndpoint
from communications.services.events import DELIVER_KIND, publish_event
from communications.services.webhooks import (
    create_endpoint,
    publish_job_event,
    subscribed_job_events,
    update_endpoint,
)
from jobs.models import Job
from jobs.services.jobs import announce_end, enqueue_job
from tenants.models import Tenant
from tests.communications.webhooks_receiver import (
    Receiver,
    deliveries_of,
    finished,
    receiver_fixture,  # noqa: F401
    webhook_settings_fixture,  # noqa: F401
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("webhook_settings"),
]

Work = Callable[..., None]
PUBLIC_URL = "http://93.184.215.14/hooks"


def endpoint(tenant: Tenant, *event_types: str, url: str = PUBLIC_URL, **fields: Any) -> Any:
    return create_endpoint(tenant=tenant, url=url, event_types=list(event_types), **fields)


def test_an_event_goes_to_each_active_endpoint_subscribed_to_it_each_with_its_own_job(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    by_type = endpoint(tenant, "contact.created")
    every = endpoint(tenant, "*")
    endpoint(tenant, "contact.deleted")
    endpoint(tenant, "contact.created", is_active=False)
    endpoint(other_tenant, "*")

    publish_event(tenant, EventType.CONTACT_CREATED, {"contact": {"id": 1}})

    deliveries = deliveries_of(tenant)
    assert {d.endpoint_id for d in deliveries} == {by_type.pk, every.pk}
    assert len({d.event_id for d in deliveries}) == 1
    jobs = Job.objects.filter(pk__in=[d.job_id for d in deliveries])
    assert {(j.kind, j.queue) for j in jobs} == {(DELIVER_KIND, "webhooks")}
    assert jobs.count() == 2
    assert deliveries_of(other_tenant) == []


def test_an_event_published_in_a_transaction_that_rolls_back_is_not_delivered(
    tenant: Tenant,
) -> None:
    endpoint(tenant, "*")

    with transaction.atomic():
        publish_event(tenant, EventType.CONTACT_CREATED, {"contact": {"id": 1}})
        assert deliveries_of(tenant) == []  # nothing before the commit
        transaction.set_rollback(True)

    assert deliveries_of(tenant) == []
    assert not Job.objects.filter(kind=DELIVER_KIND).exists()


def test_the_body_holds_the_event_as_published(tenant: Tenant) -> None:
    endpoint(tenant, "*")

    publish_event(tenant, EventType.REPORT_READY, {"report": {"id": "r1", "rows": 3}})

    [delivery] = deliveries_of(tenant)
    assert set(delivery.payload) == {"id", "type", "created", "tenant", "data"}
    assert delivery.payload["type"] == "report.ready"
    assert delivery.payload["tenant"] == tenant.slug
    assert delivery.payload["data"] == {"report": {"id": "r1", "rows": 3}}
    assert delivery.status == WebhookDelivery.Status.PENDING


def test_an_unknown_event_type_is_a_programming_error(tenant: Tenant) -> None:
    with pytest.raises(ValueError, match=r"contact\.exploded"):
        publish_event(tenant, "contact.exploded", {})


# --- Job events -----------------------------------------------------------------------------------


def test_a_job_of_a_tenant_subscribed_to_job_succeeded_is_delivered_once(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    hook = create_endpoint(tenant=tenant, url=receiver.url(), event_types=["*"])
    receiver.secrets = [hook.secret]
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={"note": "hi"})

    work_until(
        lambda: bool(deliveries_of(tenant)) and finished(*deliveries_of(tenant))(),
        queues=["default", "webhooks"],
    )

    [delivery] = deliveries_of(tenant)  # the delivery's own job published nothing
    [request] = receiver.requests
    body = json.loads(request.body)
    assert request.verified
    assert (delivery.event_type, delivery.status) == ("job.succeeded", "succeeded")
    assert body["data"]["job"]["id"] == str(job.pk)
    assert body["data"]["job"]["kind"] == "jobs.noop"
    assert body["data"]["job"]["status"] == "succeeded"
    assert "payload" not in body["data"]["job"]


def test_a_failed_job_publishes_job_failed_with_its_error(tenant: Tenant, work_until: Work) -> None:
    endpoint(tenant, "job.failed")
    job = enqueue_job(tenant=tenant, kind="jobs.fail", payload={"permanent": True})

    work_until(lambda: bool(deliveries_of(tenant)), queues=["default"])

    [delivery] = deliveries_of(tenant)
    data = delivery.payload["data"]["job"]
    assert delivery.event_type == "job.failed"
    assert (data["id"], data["status"]) == (str(job.pk), "failed")
    assert data["error_type"]


def test_no_job_event_is_published_for_a_tenant_not_subscribed_to_job_events(
    tenant: Tenant, work_until: Work
) -> None:
    endpoint(tenant, "contact.created", "job.failed")
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})

    work_until(
        lambda: Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED, queues=["default"]
    )

    assert deliveries_of(tenant) == []


def test_a_finished_job_of_an_unsubscribed_tenant_costs_no_query(
    tenant: Tenant, other_tenant: Tenant, django_assert_num_queries: Any
) -> None:
    endpoint(other_tenant, "job.succeeded")
    subscribed_job_events(tenant.pk)  # the process's table, read once per TTL
    job = Job(tenant=tenant, kind="jobs.noop", queue="default", status=Job.Status.SUCCEEDED)

    with django_assert_num_queries(0):
        for _ in range(100):
            publish_job_event(Job, job=job)

    assert subscribed_job_events(other_tenant.pk) == {"job.succeeded"}


def test_changing_an_endpoint_refreshes_this_processs_job_subscriptions(tenant: Tenant) -> None:
    hook = endpoint(tenant, "contact.created")
    assert subscribed_job_events(tenant.pk) == frozenset()

    update_endpoint(hook, event_types=["job.failed"])

    assert subscribed_job_events(tenant.pk) == {"job.failed"}
    update_endpoint(hook, is_active=False)
    assert subscribed_job_events(tenant.pk) == frozenset()


def test_deliveries_publish_no_job_events_even_when_they_fail(
    tenant: Tenant, work_until: Work, settings: Any
) -> None:
    settings.CONVEYOR_WEBHOOK_STATIC_HOSTS = {"gone.test": ["93.184.215.14"]}
    hook = endpoint(tenant, "*", url="http://gone.test/")
    settings.CONVEYOR_WEBHOOK_STATIC_HOSTS = {"gone.test": ["10.9.9.9"]}

    publish_event(tenant, EventType.MESSAGE_FAILED, {"message": {"id": 5}})
    work_until(finished(*deliveries_of(tenant)), queues=["webhooks"])

    [delivery] = deliveries_of(tenant)
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert Job.objects.get(pk=str(delivery.job_id)).status == Job.Status.FAILED
    assert WebhookDelivery.objects.filter(endpoint=hook).count() == 1


def test_an_inactive_tenants_events_are_dropped(tenant: Tenant) -> None:
    endpoint(tenant, "*")
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)
    tenant.refresh_from_db()

    publish_event(tenant, EventType.CONTACT_CREATED, {"contact": {"id": 1}})

    assert WebhookEndpoint.objects.count() == 1
    assert deliveries_of(tenant) == []


def test_a_delivery_whose_job_failed_without_recording_it_is_marked_dead(tenant: Tenant) -> None:
    endpoint(tenant, "*")
    publish_event(tenant, EventType.CONTACT_CREATED, {"contact": {"id": 1}})
    [delivery] = deliveries_of(tenant)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="started", attempts=10)
    job = Job.objects.get(pk=str(delivery.job_id))
    job.status, job.error_message = Job.Status.FAILED, "the worker stopped reporting"

    announce_end(job)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert "the worker stopped reporting" in delivery.last_error
    assert deliveries_of(tenant) == [delivery]
