"""The webhook delivery kind: one POST per attempt; the job engine schedules the retries."""

from typing import Any

from rest_framework import serializers

from communications.models import EventType
from communications.services.webhooks import (
    DELIVER_KIND,
    fail_delivery,
    record_attempt,
    settle_delivery_job,
    start_attempt,
)
from communications.webhook_sender import MAX_RETRY_AFTER, retry_delay, send_delivery
from jobs.errors import PermanentError, RetryableError
from jobs.kinds import job_kind
from jobs.models import Priority
from jobs.runtime.context import JobContext


class DeliverWebhookPayload(serializers.Serializer):
    delivery_id = serializers.UUIDField()


@job_kind(
    DELIVER_KIND,
    queue="webhooks",
    priority=Priority.HIGH,
    backoff_cap=MAX_RETRY_AFTER,  # the delays come from the kind (Retry-After may be long)
    payload=DeliverWebhookPayload,
    on_end=settle_delivery_job,
)
def deliver_webhook(ctx: JobContext, *, delivery_id: str) -> dict[str, Any]:
    """POST the delivery, signed; 2xx succeeds, 408/425/429/5xx and network errors retry,
    other answers (and the last attempt's failure) fail it: a dead letter, replayable."""
    delivery = start_attempt(delivery_id, tenant=ctx.tenant)
    if delivery is None:
        return {"skipped": "nothing to send"}
    endpoint = delivery.endpoint
    if not endpoint.is_active and delivery.event_type != EventType.WEBHOOK_TEST:
        fail_delivery(delivery, reason="The endpoint was disabled before this was sent.")
        return {"skipped": "endpoint disabled"}
    outcome = send_delivery(delivery, attempt=delivery.attempts)
    if outcome.succeeded:
        record_attempt(delivery, outcome, retry_in=None)
        return {"status_code": outcome.status_code, "attempts": delivery.attempts}
    last = outcome.permanent or ctx.attempt >= ctx.job.max_attempts
    retry_in = None if last else retry_delay(ctx.attempt, outcome.retry_after)
    record_attempt(delivery, outcome, retry_in=retry_in)
    if outcome.permanent:
        raise PermanentError(f"{outcome.summary}: not retried.")
    raise RetryableError(outcome.summary or "Delivery failed.", delay=retry_in)
