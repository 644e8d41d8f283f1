"""Webhook deliveries against a real receiver on 127.0.0.1, run by real RQ workers."""

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from communications.models import (
    EventType,
    Notification,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from communications.services.events import publish_event
from communications.services.webhooks import (
    create_endpoint,
    replay_delivery,
    rotate_secret,
    send_test_event,
    update_endpoint,
)
from jobs.models import Job
from jobs.services.jobs import enqueue_job
from tenants.models import Role, Tenant
from tests.communications.webhooks_receiver import (
    Receiver,
    Reply,
    deliveries_of,
    finished,
    receiver_fixture,  # noqa: F401
    tls_receiver_fixture,  # noqa: F401
    webhook_settings_fixture,  # noqa: F401
)
from tests.factories import make_member
from tests.workers import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("webhook_settings"),
]

Work = Callable[..., None]


def endpoint_for(receiver: Receiver, tenant: Tenant, **fields: Any) -> WebhookEndpoint:
    fields.setdefault("event_types", ["*"])
    endpoint = create_endpoint(tenant=tenant, url=receiver.url(), **fields)
    receiver.secrets = [endpoint.secret]
    return endpoint


def publish_one(tenant: Tenant, work_until: Work, **data: object) -> WebhookDelivery:
    publish_event(tenant, EventType.CONTACT_CREATED, {"contact": {"id": 7, **data}})
    [delivery] = deliveries_of(tenant)
    work_until(finished(delivery), queues=["webhooks"])
    delivery.refresh_from_db()
    return delivery


def attempts_of(delivery: WebhookDelivery) -> list[tuple[str, int | None]]:
    rows = WebhookAttempt.objects.filter(delivery=delivery).order_by("number")
    return [(row.outcome, row.response_code) for row in rows]


def test_a_2xx_answer_delivers_an_event_signed_the_standard_webhooks_way_once(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    endpoint = endpoint_for(receiver, tenant)

    delivery = publish_one(tenant, work_until, name="Ada")

    [request] = receiver.requests
    body = json.loads(request.body)
    assert request.verified  # by the standardwebhooks package
    assert request.legacy_verified  # and by the earlier Conveyor-Signature, still sent
    assert request.headers["webhook-id"] == str(delivery.event_id)
    assert request.headers["webhook-timestamp"] == request.headers["Conveyor-Timestamp"]
    assert request.headers["webhook-signature"].startswith("v1,")
    assert body["type"] == "contact.created"
    assert body["tenant"] == "acme"
    assert body["data"] == {"contact": {"id": 7, "name": "Ada"}}
    assert body["id"] == str(delivery.event_id) == request.headers["Conveyor-Event-Id"]
    assert request.headers["Conveyor-Event-Type"] == "contact.created"
    assert request.headers["Content-Type"] == "application/json"
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == (
        WebhookDelivery.Status.SUCCEEDED,
        1,
        200,
    )
    assert delivery.last_response_excerpt == "ok"
    assert attempts_of(delivery) == [("succeeded", 200)]
    endpoint.refresh_from_db()
    assert endpoint.last_success_at is not None


def test_a_500_is_retried_until_the_endpoint_answers_2xx(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    endpoint_for(receiver, tenant)
    receiver.reply(Reply(500, b"oops"), Reply(503, b"busy"))

    delivery = publish_one(tenant, work_until)

    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert attempts_of(delivery) == [("retrying", 500), ("retrying", 503), ("succeeded", 200)]
    assert len(receiver.requests) == 3
    assert len({r.headers["Conveyor-Event-Id"] for r in receiver.requests}) == 1
    assert {r.headers["Idempotency-Key"] for r in receiver.requests} == {str(delivery.pk)}
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert [r.headers["Conveyor-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    assert Job.objects.get(pk=str(delivery.job_id)).status == Job.Status.SUCCEEDED


def test_a_400_fails_at_once_without_retrying(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    endpoint_for(receiver, tenant)
    receiver.reply(Reply(400, b'{"error": "unknown contact"}'))

    delivery = publish_one(tenant, work_until)

    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.FAILED, 1)
    assert delivery.last_response_excerpt == '{"error": "unknown contact"}'
    assert attempts_of(delivery) == [("failed", 400)]
    assert len(receiver.requests) == 1
    job = Job.objects.get(pk=str(delivery.job_id))
    assert (job.status, job.attempt) == (Job.Status.FAILED, 1)


def test_a_429_is_retried_after_the_retry_after_seconds(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    endpoint_for(receiver, tenant)
    receiver.reply(Reply(429, b"slow down", headers={"Retry-After": "3"}))

    delivery = publish_one(tenant, work_until)

    first, second = receiver.requests
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    # The backoff alone retries at once in these tests; RQ's scheduler keeps whole seconds.
    assert second.at - first.at >= 2.0
    assert WebhookAttempt.objects.get(delivery=delivery, number=1).retry_in == 3
    assert delivery.attempts == 2


def test_a_timeout_is_retried(
    receiver: Receiver, tenant: Tenant, work_until: Work, settings: Any
) -> None:
    settings.CONVEYOR_WEBHOOK_TIMEOUT = 0.5
    endpoint_for(receiver, tenant)
    receiver.reply(Reply(200, delay=1.5))

    delivery = publish_one(tenant, work_until)

    first = WebhookAttempt.objects.get(delivery=delivery, number=1)
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert (first.outcome, first.response_code) == ("retrying", None)
    assert "Timed out" in first.error
    assert attempts_of(delivery)[-1] == ("succeeded", 200)


def test_a_delivery_is_dead_after_ten_attempts_and_a_replay_delivers_it(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    endpoint_for(receiver, tenant)
    receiver.default = Reply(502, b"bad gateway")

    delivery = publish_one(tenant, work_until)

    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.FAILED, 10)
    assert [outcome for outcome, _ in attempts_of(delivery)] == ["retrying"] * 9 + ["failed"]
    assert Job.objects.get(pk=str(delivery.job_id)).status == Job.Status.FAILED

    receiver.default = Reply(200)
    replay_delivery(delivery)
    work_until(finished(delivery), queues=["webhooks"])

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.SUCCEEDED, 11)
    assert len(receiver.requests) == 11
    assert receiver.requests[-1].verified


def test_after_a_rotation_a_receiver_knowing_either_secret_accepts_the_delivery(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    endpoint = endpoint_for(receiver, tenant)
    old_secret = endpoint.secret
    new_secret = rotate_secret(endpoint, grace_seconds=3600).secret
    receiver.secrets = [new_secret, old_secret]

    publish_one(tenant, work_until)

    [request] = receiver.requests
    assert receiver.verify(old_secret, request.headers, request.body)
    assert receiver.verify(new_secret, request.headers, request.body)
    assert receiver.legacy_verify(old_secret, request.headers, request.body)
    assert receiver.legacy_verify(new_secret, request.headers, request.body)
    assert request.headers["webhook-signature"].count("v1,") == 2
    assert request.headers["Conveyor-Signature"].count("v1=") == 2


def test_an_endpoint_without_the_legacy_signature_gets_only_the_standard_headers(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    endpoint_for(receiver, tenant, legacy_signature=False)

    delivery = publish_one(tenant, work_until)

    [request] = receiver.requests
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert request.verified
    assert not request.legacy_verified
    assert "Conveyor-Signature" not in request.headers
    assert "Conveyor-Timestamp" not in request.headers
    assert request.headers["Conveyor-Event-Type"] == "contact.created"


def test_a_410_gone_disables_the_endpoint_at_once_and_its_admins_are_told(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    admin = make_member(tenant, Role.ADMIN, username="ann-admin")
    endpoint = endpoint_for(receiver, tenant)
    receiver.reply(Reply(410, b"gone"))

    delivery = publish_one(tenant, work_until)

    endpoint.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.FAILED, 1)
    assert (endpoint.is_active, endpoint.disabled_reason) == (False, "it answered 410 Gone.")
    work_until(lambda: Notification.objects.exists(), queues=["notifications"])
    assert Notification.objects.get().user == admin


def test_once_the_grace_period_is_over_only_the_new_secret_signs(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    endpoint = endpoint_for(receiver, tenant)
    old_secret = endpoint.secret
    new_secret = rotate_secret(endpoint, grace_seconds=60).secret
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    receiver.secrets = [new_secret, old_secret]

    publish_one(tenant, work_until)

    [request] = receiver.requests
    assert receiver.verify(new_secret, request.headers, request.body)
    assert not receiver.verify(old_secret, request.headers, request.body)


def test_a_receiver_that_only_knows_a_wrong_secret_refuses_and_the_delivery_dies(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    endpoint_for(receiver, tenant)
    receiver.secrets = ["whsec_someone-elses"]

    delivery = publish_one(tenant, work_until)

    assert (delivery.status, delivery.last_response_code) == (WebhookDelivery.Status.FAILED, 401)


def test_redirects_are_not_followed(receiver: Receiver, tenant: Tenant, work_until: Work) -> None:
    endpoint_for(receiver, tenant)
    receiver.reply(Reply(302, b"", headers={"Location": receiver.url("/elsewhere")}))

    delivery = publish_one(tenant, work_until)

    assert [r.path for r in receiver.requests] == ["/hooks"]
    assert (delivery.status, delivery.last_response_code) == (WebhookDelivery.Status.FAILED, 302)


def test_only_the_start_of_a_long_answer_is_read_and_kept(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    endpoint_for(receiver, tenant)
    receiver.reply(Reply(200, b"x" * 5_000_000))

    delivery = publish_one(tenant, work_until)

    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert delivery.last_response_excerpt == "x" * 500


def test_the_connection_goes_to_the_checked_address_with_the_urls_host_name(
    receiver: Receiver, tenant: Tenant, work_until: Work, settings: Any
) -> None:
    settings.CONVEYOR_WEBHOOK_STATIC_HOSTS = {"hooks.acme.test": ["127.0.0.1"]}
    endpoint = create_endpoint(
        tenant=tenant, url=f"http://hooks.acme.test:{receiver.port}/in", event_types=["*"]
    )
    receiver.secrets = [endpoint.secret]

    delivery = publish_one(tenant, work_until)

    [request] = receiver.requests
    assert request.headers["Host"] == f"hooks.acme.test:{receiver.port}"
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert WebhookAttempt.objects.get(delivery=delivery).address == "127.0.0.1"


def test_a_host_that_resolves_to_a_private_address_at_send_time_is_refused(
    receiver: Receiver, tenant: Tenant, work_until: Work, settings: Any
) -> None:
    settings.CONVEYOR_WEBHOOK_STATIC_HOSTS = {"rebind.test": ["127.0.0.1"]}
    endpoint = create_endpoint(
        tenant=tenant, url=f"http://rebind.test:{receiver.port}/", event_types=["*"]
    )
    receiver.secrets = [endpoint.secret]
    settings.CONVEYOR_WEBHOOK_STATIC_HOSTS = {"rebind.test": ["10.0.0.7"]}

    delivery = publish_one(tenant, work_until)

    assert receiver.requests == []
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert "10.0.0.7 is a private address" in delivery.last_error


def test_an_endpoint_is_disabled_after_dead_deliveries_in_a_row_and_its_admins_told(
    receiver: Receiver, tenant: Tenant, work_until: Work, settings: Any
) -> None:
    settings.CONVEYOR_WEBHOOK_DISABLE_AFTER = 2
    admin = make_member(tenant, Role.ADMIN, username="ann-admin")
    owner = make_member(tenant, Role.OWNER, username="otto-owner")
    agent = make_member(tenant, Role.AGENT, username="al-agent")
    endpoint = endpoint_for(receiver, tenant)
    receiver.default = Reply(404, b"not found")

    for _ in range(2):
        publish_event(tenant, EventType.CONTACT_UPDATED, {"contact": {"id": 1}})
    work_until(finished(*deliveries_of(tenant)), queues=["webhooks"])
    publish_event(tenant, EventType.CONTACT_UPDATED, {"contact": {"id": 1}})

    endpoint.refresh_from_db()
    assert (endpoint.is_active, endpoint.consecutive_failures) == (False, 2)
    assert len(deliveries_of(tenant)) == 2  # nothing more goes to a disabled endpoint
    work_until(lambda: Notification.objects.exists(), queues=["notifications"])
    notified = set(Notification.objects.values_list("user__username", flat=True))
    assert notified == {admin.username, owner.username}
    assert agent.username not in notified

    update_endpoint(endpoint, is_active=True)
    endpoint.refresh_from_db()
    assert (endpoint.is_active, endpoint.consecutive_failures) == (True, 0)


def test_a_success_clears_the_count_of_dead_deliveries_in_a_row(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    endpoint = endpoint_for(receiver, tenant)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=4)

    publish_one(tenant, work_until)

    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0


def test_a_test_event_reaches_an_endpoint_not_subscribed_to_anything_like_it(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    endpoint = endpoint_for(receiver, tenant, event_types=["report.ready"])

    delivery = send_test_event(endpoint)
    work_until(finished(delivery), queues=["webhooks"])

    [request] = receiver.requests
    assert request.verified
    assert json.loads(request.body)["type"] == "webhook.test"


def test_deliveries_waiting_for_an_endpoint_disabled_meanwhile_go_dead_unsent(
    receiver: Receiver, tenant: Tenant, work_until: Work
) -> None:
    endpoint = endpoint_for(receiver, tenant)
    publish_event(tenant, EventType.CONTACT_DELETED, {"contact": {"id": 3}})
    [delivery] = deliveries_of(tenant)
    update_endpoint(endpoint, is_active=False)

    work_until(finished(delivery), queues=["webhooks"])

    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert "disabled" in delivery.last_error


def test_https_goes_to_the_checked_address_with_sni_and_the_certificate_of_the_host_name(
    tls_receiver: tuple[Receiver, Path], tenant: Tenant, work_until: Work, settings: Any
) -> None:
    receiver, certificate = tls_receiver
    settings.CONVEYOR_WEBHOOK_STATIC_HOSTS = {"hooks.acme.test": ["127.0.0.1"]}
    settings.CONVEYOR_WEBHOOK_CA_BUNDLE = str(certificate)
    endpoint = create_endpoint(
        tenant=tenant, url=f"https://hooks.acme.test:{receiver.port}/in", event_types=["*"]
    )
    receiver.secrets = [endpoint.secret]

    delivery = publish_one(tenant, work_until)

    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    [request] = receiver.requests
    assert request.verified
    assert request.headers["Host"] == f"hooks.acme.test:{receiver.port}"


def test_https_refuses_a_certificate_that_is_not_for_the_urls_host_name(
    tls_receiver: tuple[Receiver, Path], tenant: Tenant, work_until: Work, settings: Any
) -> None:
    receiver, certificate = tls_receiver  # a trusted certificate, for hooks.acme.test only
    settings.CONVEYOR_WEBHOOK_STATIC_HOSTS = {"other.acme.test": ["127.0.0.1"]}
    settings.CONVEYOR_WEBHOOK_CA_BUNDLE = str(certificate)
    create_endpoint(
        tenant=tenant, url=f"https://other.acme.test:{receiver.port}/in", event_types=["*"]
    )

    delivery = publish_one(tenant, work_until)

    assert receiver.requests == []
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert "other.acme.test" in delivery.last_error


def test_a_worker_process_delivers_the_job_event_of_a_finished_job_retrying_a_500(
    receiver: Receiver, tenant: Tenant, worker_process: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("CONVEYOR_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("CONVEYOR_WEBHOOK_BACKOFF_BASE", "0")
    endpoint = endpoint_for(receiver, tenant, event_types=["job.succeeded"])
    receiver.reply(Reply(500, b"not yet"))
    worker_process("default", "webhooks")

    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    wait_for(lambda: WebhookDelivery.objects.filter(status="succeeded").exists(), timeout=30)

    [delivery] = deliveries_of(tenant)
    assert (delivery.endpoint_id, delivery.attempts) == (endpoint.pk, 2)
    assert [r.verified for r in receiver.requests] == [True, True]
    assert json.loads(receiver.requests[-1].body)["data"]["job"]["id"] == str(job.pk)
