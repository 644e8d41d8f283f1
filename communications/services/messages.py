"""Single sends, and the one place a message meets its provider: checked before, marked after.

A message is claimed (`queued` → `sending`, one conditional UPDATE that commits) before its
provider is called and marked `sent` or `failed` after. A retry finds a sent message sent and
leaves it. A message found still `sending` belongs to an attempt that died between the provider
call and the marking: its outcome is unknown, so it is marked failed and never sent again
(at most once; see docs/messaging.md).
"""

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from communications.addresses import normalize_email, normalize_phone
from communications.models import Channel, Contact, Message
from communications.providers import Outgoing, PermanentSendError, RetryableSendError
from communications.secrets import UnreadableSecret
from communications.services.events import publish_event
from communications.services.senders import Route, route_for
from communications.services.templates import RenderedMessage, render_template
from jobs.errors import InvalidTransition
from jobs.kinds import get_kind
from jobs.models import Job
from jobs.runtime.runner import persisting
from jobs.services.jobs import cancel_jobs, enqueue_job
from jobs.transport import limits
from tenants.models import Tenant
from tenants.users import Actor, acting_user

logger = logging.getLogger(__name__)

SEND_KINDS = {
    Channel.EMAIL: "communications.send_email",
    Channel.SMS: "communications.send_sms",
    Channel.WHATSAPP: "communications.send_whatsapp",
}
PAST_GRACE = timedelta(minutes=1)  # a send_at this little in the past (clock skew) sends now
UNKNOWN_OUTCOME = (
    "Outcome unknown: the attempt stopped between the provider call and recording it; "
    "not sent again, to avoid a duplicate."
)


def queue_for(channel: str) -> str:
    """Email goes on the `email` queue, SMS and WhatsApp on `messaging`."""
    return "email" if channel == Channel.EMAIL else "messaging"


def channel_rate(tenant: Tenant, channel: str) -> str | None:
    """The tenant's rate for `channel` (its override, else the queue's), e.g. "10/s"."""
    rate = limits.rate_for(tenant, get_kind(SEND_KINDS[Channel(channel)]))
    return rate[1] if rate else None


def wait_for_turn(tenant: Tenant, channel: str, rate: str | None) -> None:
    """Block until the tenant's channel bucket, shared by every worker, lets one more send out."""
    if rate:
        limits.wait_for_token(tenant, channel, rate)


def contact_address(contact: Contact, channel: str) -> str:
    """Where `contact` receives `channel`: their email, or their phone for SMS and WhatsApp."""
    return contact.email if channel == Channel.EMAIL else contact.phone


def normalize_recipient(tenant: Tenant, channel: str, value: str) -> str:
    """An email address, or a phone number in E.164; ValidationError when it is neither."""
    try:
        if channel == Channel.EMAIL:
            address = normalize_email(value)
        else:
            address = normalize_phone(value, region=tenant.default_region)
    except ValidationError as error:
        raise ValidationError({"recipient": error.messages}) from None
    if not address:
        raise ValidationError({"recipient": ["Give a recipient or a contact."]})
    return address


def _resolve(
    tenant: Tenant, channel: str, recipient: str, contact: Contact | None
) -> tuple[str, Contact | None]:
    if contact is not None and contact.tenant_id != tenant.pk:
        raise ValidationError({"contact": ["No such contact in this tenant."]})
    if contact is not None and not recipient:
        address = contact_address(contact, channel)
        if not address:
            what = "email address" if channel == Channel.EMAIL else "phone number"
            raise ValidationError({"contact": [f"This contact has no {what}."]})
        return address, contact
    address = normalize_recipient(tenant, channel, recipient)
    if contact is None:
        field = "email" if channel == Channel.EMAIL else "phone"
        contact = Contact.objects.for_tenant(tenant).filter(**{field: address}).first()
    return address, contact


def _render(
    tenant: Tenant,
    channel: str,
    *,
    template: str,
    variables: dict[str, Any],
    contact: Contact | None,
    content: RenderedMessage,
) -> RenderedMessage:
    if not template:
        if not content.text and not content.html:
            raise ValidationError({"text": ["Give a template or the message's text."]})
        if channel == Channel.EMAIL and not content.subject:
            raise ValidationError({"subject": ["An email without a template needs a subject."]})
        return content
    context = {**variables, "contact": contact} if contact is not None else variables
    try:
        return render_template(template, tenant=tenant, channel=channel, context=context)
    except ValidationError as error:
        raise ValidationError({"template": error.messages}) from None


def due_time(tenant: Tenant, send_at: datetime | None, *, time_zone: str = "") -> datetime | None:
    """When a scheduled send is due, aware: a time without an offset is read in `time_zone`,
    else the tenant's (so "Monday 9:00" follows daylight saving). None: send now."""
    if send_at is None:
        return None
    if timezone.is_naive(send_at):
        try:
            zone = ZoneInfo(time_zone or tenant.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"time_zone": [f"Unknown time zone {time_zone!r}."]}) from None
        send_at = send_at.replace(tzinfo=zone)
    if send_at < timezone.now() - PAST_GRACE:
        raise ValidationError({"send_at": [f"{send_at.isoformat()} has passed."]})
    return send_at if send_at > timezone.now() else None


@transaction.atomic
def send_message(
    *,
    tenant: Tenant,
    channel: str,
    template: str = "",
    subject: str = "",
    html: str = "",
    text: str = "",
    recipient: str = "",
    contact: Contact | None = None,
    variables: dict[str, Any] | None = None,
    provider_template: dict[str, Any] | None = None,
    send_at: datetime | None = None,
    time_zone: str = "",
    by: Actor = None,
) -> Message:
    """Render one message now (bad input is a ValidationError) and queue its send, at
    `send_at` when given. A contact who opted out is refused; so is an address of one.
    """
    message = compose_message(
        tenant=tenant,
        channel=channel,
        template=template,
        subject=subject,
        html=html,
        text=text,
        recipient=recipient,
        contact=contact,
        variables=variables,
        provider_template=provider_template,
        send_at=send_at,
        time_zone=time_zone,
        by=by,
    )
    queue_message(message, by=by)
    return message


def compose_message(
    *,
    tenant: Tenant,
    channel: str,
    template: str = "",
    subject: str = "",
    html: str = "",
    text: str = "",
    recipient: str = "",
    contact: Contact | None = None,
    variables: dict[str, Any] | None = None,
    provider_template: dict[str, Any] | None = None,
    send_at: datetime | None = None,
    time_zone: str = "",
    by: Actor = None,
    job: Job | None = None,
) -> Message:
    """Render and save one `queued` message without queuing a send (its caller delivers it)."""
    due = due_time(tenant, send_at, time_zone=time_zone)
    address, contact = _resolve(tenant, channel, recipient, contact)
    if contact is not None and contact.opted_out:
        raise ValidationError({"contact": [f"{address} opted out of messages."]})
    rendered = _render(
        tenant,
        channel,
        template=template,
        variables=variables or {},
        contact=contact,
        content=RenderedMessage(subject=subject, html=html, text=text),
    )
    message = Message.objects.create(
        tenant=tenant,
        channel=channel,
        recipient=address,
        contact=contact,
        template=template,
        subject=rendered.subject[:500],
        html=rendered.html,
        text=rendered.text,
        provider_template=provider_template or {},
        send_at=due,
        created_by=acting_user(by),
        job=job,
    )
    return message


@transaction.atomic
def send_template_email(
    *, tenant: Tenant, to: str, template: str, context: dict[str, Any] | None = None
) -> Message:
    """Queue a transactional email (a notification, a password reset) made from `template`."""
    rendered = render_template(template, tenant=tenant, channel=Channel.EMAIL, context=context)
    message = Message.objects.create(
        tenant=tenant,
        channel=Channel.EMAIL,
        recipient=normalize_recipient(tenant, Channel.EMAIL, to),
        template=template,
        subject=rendered.subject[:500],
        html=rendered.html,
        text=rendered.text,
    )
    queue_message(message)
    return message


def queue_message(message: Message, *, by: Actor = None) -> Job:
    """Enqueue the send of `message` on its channel's queue (rate limited per tenant)."""
    job = enqueue_job(
        tenant=message.tenant,
        kind=SEND_KINDS[Channel(message.channel)],
        payload={"message_id": message.pk},
        by=by,
        run_at=message.send_at,
        idempotency_key=f"message:{message.pk}",
    )
    Message.objects.filter(pk=message.pk).update(job=job)
    message.job = job
    return message.job


@transaction.atomic
def cancel_message(message: Message, *, by: Actor = None) -> Message:
    """Cancel a message that waits (a scheduled one before it is due): it is never sent."""
    locked = Message.objects.select_for_update().get(pk=message.pk)
    if locked.status == Message.Status.CANCELED:
        return locked
    if locked.status != Message.Status.QUEUED or locked.campaign_id:
        what = "a campaign's message" if locked.campaign_id else f"{locked.status}"
        raise InvalidTransition(f"Message {locked.pk} is {what}: only waiting sends cancel.")
    _record(locked, Message.Status.CANCELED, "Canceled before it was sent.", only_if="queued")
    if locked.job_id:
        cancel_jobs(Job.objects.filter(pk=locked.job_id, status__in=Job.CANCELABLE), by=by)
    return locked


# --- Delivery -----------------------------------------------------------------------------------


@contextmanager
def relaxed_commits() -> Iterator[None]:
    """Commit without waiting for the WAL to reach disk while a batch marks its messages.

    A killed worker loses nothing by it (the server has every commit); a PostgreSQL crash may
    forget the last fraction of a second of status changes, as it may the runner's bookkeeping.
    """
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO DEFAULT")


@dataclass(frozen=True)
class Delivery:
    """What one delivery attempt of a message came to: its status now, and why."""

    status: str
    error: str = ""
    retry_delay: float | None = None  # set when it is queued again for a later attempt

    @property
    def to_retry(self) -> bool:
        return self.status == Message.Status.QUEUED


def deliver(
    message: Message, *, job: Job | None = None, final: bool = True, route: Route | None = None
) -> Delivery:
    """Send `message` once: claim it, call the provider, record the outcome; never raises.

    It goes through `route` (a batch looks it up once) or the tenant's sender for the channel,
    else the deployment's provider. A retryable failure puts it back to `queued` (the caller
    retries it later) unless `final`, when it is marked failed like a permanent one.
    """
    return deliver_many([message], job=job, final=final, route=route)[0]


def deliver_many(
    messages: Sequence[Message],
    *,
    job: Job | None = None,
    final: bool = True,
    route: Route | None = None,
    concurrency: int = 1,
) -> list[Delivery]:
    """`deliver` for several messages, their provider calls made `concurrency` at a time.

    Claims and records stay in this thread, in order (claimed before, marked after); only the
    provider calls run in threads, so a provider that takes 100 ms does not cost 100 ms a send.
    """
    claimed = [message for message in messages if _claim(message, job=job)]
    try:
        route = route or route_for(messages[0].tenant, messages[0].channel) if claimed else None
    except UnreadableSecret as error:
        outcomes = {m.pk: mark_failed(m, str(error)) for m in claimed}
        return [outcomes.get(m.pk) or _already(m) for m in messages]
    calls = _call_provider(claimed, route, concurrency) if route is not None else []
    outcomes = {
        message.pk: _record_call(
            message, result, final=final, sender=route.sender if route else None
        )
        for message, result in zip(claimed, calls, strict=True)
    }
    return [outcomes.get(message.pk) or _already(message) for message in messages]


def _call_provider(
    messages: list[Message], route: Route, concurrency: int
) -> list[str | Exception]:
    def call(message: Message) -> str | Exception:
        try:
            return route.client.send(_outgoing(message))
        except Exception as error:  # recorded by the caller, in its own thread
            return error

    if concurrency <= 1 or len(messages) == 1:
        return [call(message) for message in messages]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(messages))) as pool:
        return list(pool.map(call, messages))


def _outgoing(message: Message) -> Outgoing:
    return Outgoing(
        channel=message.channel,
        to=message.recipient,
        subject=message.subject,
        html=message.html,
        text=message.text,
        reference=str(message.pk),
        template=message.provider_template,
    )


def _record_call(
    message: Message, result: str | Exception, *, final: bool, sender: Any
) -> Delivery:
    message.sender = sender
    if isinstance(result, str):
        return _mark_sent(message, result)
    if isinstance(result, PermanentSendError):
        return mark_failed(message, str(result))
    if isinstance(result, RetryableSendError):
        return _retry_or_fail(message, str(result), delay=result.delay, final=final)
    logger.error("message=%s: the provider raised %r", message.pk, result)  # treated as passing
    return _retry_or_fail(message, f"{type(result).__name__}: {result}", delay=None, final=final)


def _claim(message: Message, *, job: Job | None) -> bool:
    """`queued` → `sending` with the content to send; False when it is not queued any more."""
    claimed = Message.objects.filter(pk=message.pk, status=Message.Status.QUEUED).update(
        status=Message.Status.SENDING,
        attempts=F("attempts") + 1,
        job=job if job is not None else F("job"),
        subject=message.subject,
        html=message.html,
        text=message.text,
        error="",
        updated_at=timezone.now(),
    )
    if claimed:
        message.status = Message.Status.SENDING
        message.attempts += 1
    return bool(claimed)


def _already(message: Message) -> Delivery:
    current = Message.objects.filter(pk=message.pk).values_list("status", "error").first()
    status, error = current or (Message.Status.CANCELED, "The message is gone.")
    if status == Message.Status.SENDING:
        return mark_failed(message, UNKNOWN_OUTCOME, only_if=Message.Status.SENDING)
    message.status, message.error = status, error
    return Delivery(status=status, error=error)


@persisting
def _mark_sent(message: Message, provider_id: str) -> Delivery:
    now = timezone.now()
    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.SENT,
        sender=message.sender,
        provider_message_id=provider_id[:200],
        sent_at=now,
        updated_at=now,
    )
    message.status, message.provider_message_id, message.sent_at = (
        Message.Status.SENT,
        provider_id,
        now,
    )
    return Delivery(status=Message.Status.SENT)


def _retry_or_fail(message: Message, error: str, *, delay: float | None, final: bool) -> Delivery:
    if final:
        return mark_failed(message, error)
    _record(message, Message.Status.QUEUED, error, only_if=Message.Status.SENDING)
    return Delivery(status=Message.Status.QUEUED, error=error, retry_delay=delay)


def mark_failed(
    message: Message, error: str, *, only_if: str | tuple[str, ...] = Message.PENDING
) -> Delivery:
    """Record that `message` failed (if it was still `only_if`) and publish message.failed."""
    if _record(message, Message.Status.FAILED, error, only_if=only_if):
        publish_event(
            message.tenant,
            "message.failed",
            {
                "id": message.pk,
                "channel": message.channel,
                "recipient": message.recipient,
                "campaign": message.campaign_id,
                "error": error[:1000],
            },
        )
    return Delivery(status=Message.Status.FAILED, error=error)


def settle_message_job(job: Job) -> None:
    """`on_end` of the send kinds: a send job that ended without settling its message.

    A job canceled while waiting cancels its queued message; one that failed without recording
    (its worker died on the last attempt) fails it — as "outcome unknown" if it was being sent.
    """
    if job.status == Job.Status.SUCCEEDED:
        return
    message = (
        Message.objects.select_related("tenant")
        .filter(tenant_id=job.tenant_id, pk=job.payload.get("message_id"))
        .first()
    )
    if message is None or message.status not in Message.PENDING:
        return
    if job.status == Job.Status.CANCELED:
        _record(message, Message.Status.CANCELED, "Its job was canceled.", only_if=Message.PENDING)
    elif message.status == Message.Status.SENDING:
        mark_failed(message, UNKNOWN_OUTCOME, only_if=Message.Status.SENDING)
    else:
        mark_failed(message, f"Its job failed: {job.error_message}"[:1000], only_if=Message.PENDING)


def mark_skipped(message: Message, reason: str) -> Delivery:
    """Record that `message` is not sent at all (an opt-out, no address)."""
    _record(message, Message.Status.SKIPPED, reason, only_if=Message.Status.QUEUED)
    return Delivery(status=Message.Status.SKIPPED, error=reason)


@persisting
def _record(message: Message, status: str, error: str, *, only_if: str | tuple[str, ...]) -> bool:
    statuses = (only_if,) if isinstance(only_if, str) else only_if
    updated = Message.objects.filter(pk=message.pk, status__in=statuses).update(
        status=status, error=error[:5000], updated_at=timezone.now()
    )
    if updated:
        message.status, message.error = status, error
    return bool(updated)
