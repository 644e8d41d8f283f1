"""Webhook events and their deliveries: endpoints, publishing, attempts, dead letters, replay."""

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import batched
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from rest_framework import serializers

from communications.models import (
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from communications.models.webhooks import ALL_EVENTS
from communications.services.events import (
    DELIVER_KIND,
    SUBSCRIBABLE,
    create_deliveries,
    make_event,
    publish_event,
)
from communications.services.notifications import notify_members
from communications.signing import make_secret
from communications.ssrf import UnsafeURL, check_url
from communications.webhook_sender import Outcome
from config.exceptions import DomainError
from jobs.models import Job
from jobs.redaction import redact
from jobs.services.jobs import enqueue_job, enqueue_jobs
from tenants.models import Role, Tenant
from tenants.users import Actor, acting_user

logger = logging.getLogger(__name__)

# Jobs of these kinds publish no job events: a delivery must not cause another delivery.
WEBHOOK_KINDS = frozenset({DELIVER_KIND})
JOB_EVENTS: dict[str, str] = {
    Job.Status.SUCCEEDED: EventType.JOB_SUCCEEDED,
    Job.Status.FAILED: EventType.JOB_FAILED,
}
EDITABLE = ("url", "description", "event_types", "is_active", "legacy_signature")
REPLAY_CHUNK = 500
MAX_GRACE = 7 * 24 * 3600


class WebhookConflict(DomainError):
    """The delivery or endpoint is not in a state that allows this (answered 409)."""


# --- Endpoints -----------------------------------------------------------------------------------


def check_endpoint_url(url: str) -> str:
    """The URL, if webhooks may go there; else a 400 at `url` saying why."""
    try:
        check_url(url)
    except UnsafeURL as error:
        raise serializers.ValidationError({"url": [str(error)]}) from None
    return url.strip()


def check_event_types(event_types: Iterable[str]) -> list[str]:
    """Known, subscribable types without repeats, or `["*"]`; else a 400 at `event_types`."""
    chosen = list(dict.fromkeys(event_types))
    if not chosen:
        raise serializers.ValidationError({"event_types": ['Choose at least one, or "*".']})
    unknown = [name for name in chosen if name != ALL_EVENTS and name not in SUBSCRIBABLE]
    if unknown:
        raise serializers.ValidationError(
            {"event_types": [f"Unknown event type {unknown[0]!r}; choose among {SUBSCRIBABLE}."]}
        )
    return [ALL_EVENTS] if ALL_EVENTS in chosen else chosen


@transaction.atomic
def create_endpoint(
    *,
    tenant: Tenant,
    url: str,
    event_types: Sequence[str],
    description: str = "",
    is_active: bool = True,
    legacy_signature: bool = True,
    by: Actor = None,
) -> WebhookEndpoint:
    """Save an endpoint with a new secret; the caller shows `endpoint.secret` once."""
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant,
        url=check_endpoint_url(url),
        description=description,
        event_types=check_event_types(event_types),
        is_active=is_active,
        legacy_signature=legacy_signature,
        secret=make_secret(),
        created_by=acting_user(by),
    )
    _subscriptions_changed()
    logger.info("tenant=%s webhook endpoint %s created", tenant.slug, endpoint.pk)
    return endpoint


@transaction.atomic
def update_endpoint(
    endpoint: WebhookEndpoint, *, by: Actor = None, **fields: Any
) -> WebhookEndpoint:
    """Change URL, description, event types or the active flag; enabling clears the failures."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise TypeError(f"Not editable: {sorted(unknown)}")
    if "url" in fields:
        fields["url"] = check_endpoint_url(fields["url"])
    if "event_types" in fields:
        fields["event_types"] = check_event_types(fields["event_types"])
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    changed = [name for name, value in fields.items() if getattr(endpoint, name) != value]
    if fields.get("is_active") and not endpoint.is_active:
        endpoint.consecutive_failures, endpoint.disabled_at, endpoint.disabled_reason = 0, None, ""
        changed += ["consecutive_failures", "disabled_at", "disabled_reason"]
    for name, value in fields.items():
        setattr(endpoint, name, value)
    if changed:
        endpoint.save(update_fields=[*dict.fromkeys(changed), "updated_at"])
        _subscriptions_changed()
    return endpoint


@transaction.atomic
def delete_endpoint(endpoint: WebhookEndpoint, *, by: Actor = None) -> None:
    """Delete the endpoint and its deliveries; their waiting jobs find nothing to send."""
    endpoint.delete()
    _subscriptions_changed()
    logger.info("tenant=%s webhook endpoint %s deleted by %s", endpoint.tenant_id, endpoint.pk, by)


@transaction.atomic
def rotate_secret(
    endpoint: WebhookEndpoint, *, grace_seconds: int | None = None, by: Actor = None
) -> WebhookEndpoint:
    """A new secret; the old one keeps signing too (a second signature) for the grace period."""
    grace = settings.CONVEYOR_WEBHOOK_ROTATION_GRACE if grace_seconds is None else grace_seconds
    if not 0 <= grace <= MAX_GRACE:
        raise serializers.ValidationError(
            {"grace_seconds": [f"Choose between 0 and {MAX_GRACE} seconds."]}
        )
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    expires = timezone.now() + timedelta(seconds=grace) if grace else None
    endpoint.previous_secret = endpoint.secret if grace else ""
    endpoint.previous_secret_expires_at = expires
    endpoint.secret = make_secret()
    endpoint.save(
        update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"]
    )
    logger.info("tenant=%s webhook endpoint %s secret rotated", endpoint.tenant_id, endpoint.pk)
    return endpoint


def send_test_event(endpoint: WebhookEndpoint, *, by: Actor = None) -> WebhookDelivery:
    """Deliver a `webhook.test` event to this endpoint alone, active or not."""
    data = {"endpoint": str(endpoint.pk), "message": "A test event from Conveyor."}
    event = make_event(endpoint.tenant, EventType.WEBHOOK_TEST, data)
    return create_deliveries(endpoint.tenant, event, [endpoint], by=by)[0]


# --- Replay --------------------------------------------------------------------------------------


@transaction.atomic
def replay_delivery(delivery: WebhookDelivery, *, by: Actor = None) -> WebhookDelivery:
    """Send a finished delivery (failed, canceled or succeeded) again, with fresh attempts."""
    delivery = (
        WebhookDelivery.objects.select_for_update(of=("self",))
        .select_related("endpoint", "tenant")
        .get(pk=delivery.pk)
    )
    if delivery.status not in WebhookDelivery.FINISHED:
        raise WebhookConflict(
            f"Delivery {delivery.pk} is {delivery.status}: only failed, canceled or succeeded "
            "deliveries can be replayed."
        )
    if not delivery.endpoint.is_active:
        raise WebhookConflict("The endpoint is disabled: enable it before replaying.")
    job = enqueue_job(
        tenant=delivery.tenant, kind=DELIVER_KIND, payload={"delivery_id": str(delivery.pk)}, by=by
    )
    delivery.status, delivery.next_attempt_at = WebhookDelivery.Status.PENDING, None
    delivery.job = job
    delivery.save(update_fields=["status", "next_attempt_at", "job", "updated_at"])
    return delivery


def replay_deliveries(deliveries: QuerySet[WebhookDelivery], *, by: Actor = None) -> dict[str, int]:
    """Replay every finished delivery of `deliveries` whose endpoint is active."""
    ids = list(deliveries.values_list("pk", flat=True))
    replayed = sum(_replay_chunk(chunk, by=by) for chunk in batched(ids, REPLAY_CHUNK))
    return {"replayed": replayed, "skipped": len(ids) - replayed}


@transaction.atomic
def _replay_chunk(ids: Sequence[uuid.UUID], *, by: Actor) -> int:
    rows = list(
        WebhookDelivery.objects.select_for_update(of=("self",), skip_locked=True)
        .select_related("tenant")
        .filter(pk__in=ids, status__in=WebhookDelivery.FINISHED, endpoint__is_active=True)
    )
    by_tenant: dict[int, list[WebhookDelivery]] = defaultdict(list)
    for delivery in rows:
        by_tenant[delivery.tenant_id].append(delivery)
    for group in by_tenant.values():
        jobs = enqueue_jobs(
            tenant=group[0].tenant,
            kind=DELIVER_KIND,
            payloads=[{"delivery_id": str(delivery.pk)} for delivery in group],
            by=by,
        )
        for delivery, job in zip(group, jobs, strict=True):
            delivery.status, delivery.job = WebhookDelivery.Status.PENDING, job
            delivery.next_attempt_at, delivery.updated_at = None, timezone.now()
    WebhookDelivery.objects.bulk_update(rows, ["status", "next_attempt_at", "job", "updated_at"])
    return len(rows)


# --- Attempts (called by the delivery kind) ------------------------------------------------------


@transaction.atomic
def start_attempt(delivery_id: str, *, tenant: Tenant) -> WebhookDelivery | None:
    """Mark the delivery as being sent and count the attempt; None if it has nothing to send."""
    delivery = (
        WebhookDelivery.objects.select_for_update(of=("self",))
        .select_related("endpoint")
        .filter(tenant=tenant, pk=delivery_id)
        .exclude(status__in=WebhookDelivery.FINISHED)
        .first()
    )
    if delivery is None:
        return None
    delivery.status = WebhookDelivery.Status.STARTED
    delivery.attempts += 1
    delivery.next_attempt_at = None
    delivery.save(update_fields=["status", "attempts", "next_attempt_at", "updated_at"])
    return delivery


@transaction.atomic
def record_attempt(
    delivery: WebhookDelivery, outcome: Outcome, *, retry_in: int | None
) -> WebhookDelivery:
    """Log the attempt and settle the delivery: succeeded, retrying (in `retry_in` s) or failed.

    A failed delivery (a dead letter) counts against its endpoint, which is disabled after
    CONVEYOR_WEBHOOK_DISABLE_AFTER dead letters in a row, or at once when it answered 410 Gone
    (as Standard Webhooks advises); its admins are notified.
    """
    now = timezone.now()
    if outcome.succeeded:
        status, attempt_outcome = WebhookDelivery.Status.SUCCEEDED, WebhookAttempt.Outcome.SUCCEEDED
    elif retry_in is None:
        status, attempt_outcome = WebhookDelivery.Status.FAILED, WebhookAttempt.Outcome.FAILED
    else:
        status, attempt_outcome = WebhookDelivery.Status.RETRYING, WebhookAttempt.Outcome.RETRYING
    WebhookAttempt.objects.create(
        tenant_id=delivery.tenant_id,
        delivery=delivery,
        number=delivery.attempts,
        started_at=outcome.started_at,
        duration_ms=outcome.duration_ms,
        outcome=attempt_outcome,
        response_code=outcome.status_code,
        response_excerpt=outcome.excerpt,
        error=outcome.error[:500],
        retry_in=retry_in if status == WebhookDelivery.Status.RETRYING else None,
        address=outcome.address,
    )
    delivery.status = status
    delivery.next_attempt_at = now + timedelta(seconds=retry_in) if retry_in is not None else None
    delivery.last_response_code = outcome.status_code
    delivery.last_response_excerpt = outcome.excerpt
    delivery.last_error = outcome.error[:500]
    delivery.last_duration_ms = outcome.duration_ms
    if outcome.succeeded:
        delivery.delivered_at = now
    delivery.save(
        update_fields=[
            "status",
            "next_attempt_at",
            "last_response_code",
            "last_response_excerpt",
            "last_error",
            "last_duration_ms",
            "delivered_at",
            "updated_at",
        ]
    )
    if outcome.succeeded:
        WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(
            consecutive_failures=0, last_success_at=now
        )
    elif status == WebhookDelivery.Status.FAILED and delivery.event_type != EventType.WEBHOOK_TEST:
        _count_dead_delivery(delivery.endpoint_id, gone=outcome.gone)
    return delivery


@transaction.atomic
def fail_delivery(delivery: WebhookDelivery, *, reason: str) -> None:
    """Give up on a delivery without sending it (its endpoint was disabled meanwhile)."""
    WebhookDelivery.objects.filter(pk=delivery.pk).exclude(
        status__in=WebhookDelivery.FINISHED
    ).update(status=WebhookDelivery.Status.FAILED, next_attempt_at=None, last_error=reason[:500])


def _count_dead_delivery(endpoint_id: Any, *, gone: bool) -> None:
    endpoint = (
        WebhookEndpoint.objects.select_for_update().select_related("tenant").get(pk=endpoint_id)
    )
    endpoint.consecutive_failures += 1
    endpoint.dead_deliveries += 1
    endpoint.last_failure_at = timezone.now()
    fields = ["consecutive_failures", "dead_deliveries", "last_failure_at"]
    limit = settings.CONVEYOR_WEBHOOK_DISABLE_AFTER
    too_many = bool(limit) and endpoint.consecutive_failures >= limit
    disable = endpoint.is_active and (gone or too_many)
    if disable:
        endpoint.is_active, endpoint.disabled_at = False, endpoint.last_failure_at
        endpoint.disabled_reason = (
            "it answered 410 Gone."
            if gone
            else f"{endpoint.consecutive_failures} failed deliveries in a row."
        )
        fields += ["is_active", "disabled_at", "disabled_reason"]
    endpoint.save(update_fields=[*fields, "updated_at"])
    if disable:
        _subscriptions_changed()
        _notify_disabled(endpoint)


def _notify_disabled(endpoint: WebhookEndpoint) -> None:
    logger.warning("tenant=%s webhook endpoint %s disabled", endpoint.tenant.slug, endpoint.pk)
    notify_members(
        endpoint.tenant,
        min_role=Role.ADMIN,
        title=f"Webhook endpoint disabled: {endpoint.url}"[:200],
        body=(
            f"Conveyor stopped sending events to {endpoint.url} after "
            f"{endpoint.disabled_reason} Fix the receiver, enable the endpoint again, then "
            "replay its failed deliveries."
        ),
        link=reverse("admin:communications_webhookendpoint_change", args=[endpoint.pk]),
    )


# --- Job events ----------------------------------------------------------------------------------


@dataclass
class _Subscriptions:
    """Per process: which tenants have an active endpoint for job events, read every few s."""

    expires: float = 0.0
    by_tenant: dict[int, frozenset[str]] | None = None


_job_subscriptions = _Subscriptions()


def subscribed_job_events(tenant_id: int) -> frozenset[str]:
    """The job.* event types the tenant's active endpoints want; one query per TTL per process."""
    now = time.monotonic()
    cache = _job_subscriptions
    if cache.by_tenant is None or now >= cache.expires:
        wanted = [*JOB_EVENTS.values(), ALL_EVENTS]
        rows = WebhookEndpoint.objects.filter(
            is_active=True, event_types__overlap=wanted
        ).values_list("tenant_id", "event_types")
        found: dict[int, set[str]] = defaultdict(set)
        for tenant, types in rows:
            found[tenant].update(JOB_EVENTS.values() if ALL_EVENTS in types else types)
        cache.by_tenant = {tenant: frozenset(types) for tenant, types in found.items()}
        cache.expires = now + settings.CONVEYOR_WEBHOOK_SUBSCRIPTION_TTL
    return cache.by_tenant.get(tenant_id, frozenset())


def forget_job_subscriptions() -> None:
    """Read the job-event subscriptions again at the next finished job in this process."""
    _job_subscriptions.by_tenant = None


def _subscriptions_changed() -> None:
    # Other processes see the change when their cache expires (CONVEYOR_WEBHOOK_SUBSCRIPTION_TTL).
    transaction.on_commit(forget_job_subscriptions)


def publish_job_event(sender: Any, *, job: Job, **kwargs: Any) -> None:
    """Receiver of `jobs.signals.job_finished`: job.succeeded / job.failed, if subscribed.

    Costs two dictionary lookups for a tenant without such an endpoint. Webhook deliveries
    publish nothing: a delivery must not cause another delivery.
    """
    if job.kind in WEBHOOK_KINDS:
        return
    event_type = JOB_EVENTS.get(job.status)
    if event_type is None or event_type not in subscribed_job_events(job.tenant_id):
        return
    publish_event(job.tenant, event_type, {"job": job_event_data(job)})


def settle_delivery_job(job: Job) -> None:
    """`on_end` of the delivery kind: a delivery whose job ended without settling it (its worker
    died on the last attempt, or the job was canceled) ends as its job did, and can be replayed."""
    delivery_id = job.payload.get("delivery_id")
    if delivery_id and job.status != Job.Status.SUCCEEDED:
        canceled = job.status == Job.Status.CANCELED
        WebhookDelivery.objects.filter(tenant_id=job.tenant_id, pk=delivery_id).exclude(
            status__in=WebhookDelivery.FINISHED
        ).update(
            status=WebhookDelivery.Status.CANCELED if canceled else WebhookDelivery.Status.FAILED,
            next_attempt_at=None,
            last_error=(
                "Its job was canceled." if canceled else f"Its job failed: {job.error_message}"
            )[:500],
        )


def job_event_data(job: Job) -> dict[str, Any]:
    """What a job event says about the job (its payload stays private; its result is redacted)."""
    result = None
    if job.status == Job.Status.SUCCEEDED:
        result = Job.objects.filter(pk=job.pk).values_list("result", flat=True).first()
    return {
        "id": str(job.pk),
        "kind": job.kind,
        "queue": job.queue,
        "status": job.status,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "result": redact(result),
        "error_type": job.error_type,
        "error_message": job.error_message,
    }
