"""Kinds that send one message each, rate limited per tenant and channel by the engine."""

from typing import Any

from rest_framework import serializers

from communications.models import Message
from communications.services.messages import deliver, mark_skipped, settle_message_job
from jobs.errors import PermanentError, RetryableError
from jobs.kinds import job_kind
from jobs.models import Priority
from jobs.runtime.context import JobContext


class MessagePayload(serializers.Serializer):
    message_id = serializers.IntegerField(min_value=1)


@job_kind(
    "communications.send_email",
    priority=Priority.HIGH,
    queue="email",
    rate_limit="email",
    payload=MessagePayload,
    on_end=settle_message_job,
)
def send_email(ctx: JobContext, *, message_id: int) -> dict[str, Any]:
    """Send one email message; a retry never sends it twice."""
    return _send(ctx, message_id)


@job_kind(
    "communications.send_sms",
    priority=Priority.HIGH,
    queue="messaging",
    rate_limit="sms",
    payload=MessagePayload,
    on_end=settle_message_job,
)
def send_sms(ctx: JobContext, *, message_id: int) -> dict[str, Any]:
    """Send one SMS message; a retry never sends it twice."""
    return _send(ctx, message_id)


@job_kind(
    "communications.send_whatsapp",
    priority=Priority.HIGH,
    queue="messaging",
    rate_limit="whatsapp",
    payload=MessagePayload,
    on_end=settle_message_job,
)
def send_whatsapp(ctx: JobContext, *, message_id: int) -> dict[str, Any]:
    """Send one WhatsApp message; a retry never sends it twice."""
    return _send(ctx, message_id)


def _send(ctx: JobContext, message_id: int) -> dict[str, Any]:
    message = Message.objects.select_related("contact", "tenant").get(
        tenant=ctx.tenant, pk=message_id
    )
    if message.contact is not None and message.contact.opted_out:
        outcome = mark_skipped(message, "The contact opted out before it was sent.")
    else:
        outcome = deliver(message, job=ctx.job, final=ctx.attempt >= ctx.job.max_attempts)
    if outcome.to_retry:
        raise RetryableError(outcome.error, delay=outcome.retry_delay)
    if outcome.status == Message.Status.FAILED:
        raise PermanentError(outcome.error)
    return {"message_id": message.pk, "status": outcome.status}
