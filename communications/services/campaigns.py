"""Campaigns: create, start (snapshot the recipients, split them into batch jobs), send each
recipient once, cancel between recipients, and finish with totals and a notification.
"""

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from communications.models import Campaign, Channel, Contact, Message, MessageTemplate
from communications.selectors.campaigns import campaign_totals
from communications.selectors.templates import BuiltinTemplate, resolve_template
from communications.services.events import publish_event
from communications.services.messages import (
    Delivery,
    contact_address,
    deliver_many,
    due_time,
    mark_failed,
    mark_skipped,
    queue_for,
    wait_for_turn,
)
from communications.services.notifications import absolute_url, notify_user
from communications.services.senders import Route
from communications.services.templates import render_template
from jobs.errors import InvalidTransition, PermanentError
from jobs.models import Job
from jobs.services.jobs import cancel_jobs, create_batch, enqueue_job, enqueue_jobs
from tenants.models import Tenant
from tenants.users import Actor, acting_user

logger = logging.getLogger(__name__)

SNAPSHOT_CHUNK = 2000
# The steps after a person starts a campaign, each a kind: launch (snapshot the audience, split it
# into batches), send each batch, finish (the batch's callback).
LAUNCH_KIND = "communications.launch_campaign"
BATCH_KIND = "communications.send_campaign_batch"
FINISH_KIND = "communications.finish_campaign"
FINISHED_EMAIL_TEMPLATE = "campaign-finished"
LAUNCHABLE = (Campaign.Status.DRAFT, Campaign.Status.SCHEDULED, Campaign.Status.RUNNING)


def check_audience(tenant: Tenant, *, contact_ids: list[int], tags: list[str]) -> None:
    """An audience is contact ids of this tenant, or tags; ValidationError otherwise."""
    if not contact_ids and not tags:
        raise ValidationError({"contact_ids": ["Choose the audience: contact ids or tags."]})
    if contact_ids and tags:
        raise ValidationError({"tags": ["Choose contact ids or tags, not both."]})
    if contact_ids:
        found = set(
            Contact.objects.for_tenant(tenant)
            .filter(pk__in=contact_ids)
            .values_list("pk", flat=True)
        )
        missing = sorted(set(contact_ids) - found)
        if missing:
            shown = ", ".join(map(str, missing[:10]))
            raise ValidationError({"contact_ids": [f"No such contact in this tenant: {shown}."]})


def check_template(tenant: Tenant, *, template: str, channel: str) -> None:
    """The template must exist for the channel (a missing variable shows per recipient)."""
    try:
        resolve_template(template, tenant=tenant, channel=channel)
    except ValidationError as error:
        raise ValidationError({"template": error.messages}) from None


@transaction.atomic
def create_campaign(
    *,
    tenant: Tenant,
    name: str,
    channel: str,
    template: str,
    contact_ids: Iterable[int] = (),
    tags: Iterable[str] = (),
    variables: dict[str, Any] | None = None,
    by: Actor = None,
    start: bool = True,
    send_at: datetime | None = None,
    time_zone: str = "",
) -> Campaign:
    """Save a campaign (a draft unless `start`, which also starts it, at `send_at` if given)."""
    due = due_time(tenant, send_at, time_zone=time_zone)
    contact_ids, tags = sorted(set(contact_ids)), sorted(set(tags))
    check_audience(tenant, contact_ids=contact_ids, tags=tags)
    check_template(tenant, template=template, channel=channel)
    campaign = Campaign.objects.create(
        tenant=tenant,
        name=name,
        channel=Channel(channel),
        template=template,
        variables=variables or {},
        contact_ids=contact_ids,
        tags=tags,
        send_at=due,
        created_by=acting_user(by),
    )
    if start:
        start_campaign(campaign, by=by, send_at=due)
    return campaign


@transaction.atomic
def start_campaign(
    campaign: Campaign, *, by: Actor = None, send_at: datetime | None = None
) -> Campaign:
    """Start a draft now (running), or at `send_at` (scheduled): its launch job snapshots the
    audience when it runs, once (the job's idempotency key is the campaign)."""
    locked = Campaign.objects.select_for_update(of=("self",)).get(pk=campaign.pk)
    if locked.status != Campaign.Status.DRAFT:
        raise InvalidTransition(f"Campaign {campaign.pk} is {locked.status}: only drafts start.")
    if send_at is not None:
        locked.status, locked.send_at = Campaign.Status.SCHEDULED, send_at
    else:
        locked.status, locked.started_at = Campaign.Status.RUNNING, timezone.now()
    locked.job = enqueue_job(
        tenant=locked.tenant,
        kind=LAUNCH_KIND,
        payload={"campaign_id": locked.pk},
        by=by,
        queue=queue_for(locked.channel),
        run_at=send_at,
        idempotency_key=f"campaign:{locked.pk}",
    )
    locked.save(update_fields=["status", "started_at", "send_at", "job"])
    _copy(locked, campaign, "status", "started_at", "send_at", "job", "job_id")
    return campaign


def audience(campaign: Campaign) -> Iterator[Contact]:
    """The campaign's contacts as they are now, in id order."""
    contacts = Contact.objects.for_tenant(campaign.tenant)
    if campaign.contact_ids:
        contacts = contacts.filter(pk__in=campaign.contact_ids)
    else:
        contacts = contacts.filter(tags__overlap=campaign.tags)
    fields = ("pk", "email", "phone", "opted_out")
    return contacts.order_by("pk").only(*fields).iterator(chunk_size=SNAPSHOT_CHUNK)


def _recipient_row(campaign: Campaign, contact: Contact) -> Message:
    address = contact_address(contact, campaign.channel)
    message = Message(
        tenant_id=campaign.tenant_id,
        channel=campaign.channel,
        recipient=address,
        contact=contact,
        template=campaign.template,
        campaign=campaign,
        created_by_id=campaign.created_by_id,
    )
    if contact.opted_out:
        message.status, message.error = Message.Status.SKIPPED, "The contact opted out."
    elif not address:
        what = "email address" if campaign.channel == Channel.EMAIL else "phone number"
        message.status, message.error = Message.Status.SKIPPED, f"The contact has no {what}."
    return message


def snapshot_recipients(campaign: Campaign) -> int:
    """One message row per audience contact: queued, or skipped (opted out, no address)."""
    rows: list[Message] = []
    total = 0
    for contact in audience(campaign):
        rows.append(_recipient_row(campaign, contact))
        if len(rows) >= SNAPSHOT_CHUNK:
            Message.objects.bulk_create(rows)
            total, rows = total + len(rows), []
    Message.objects.bulk_create(rows)
    return total + len(rows)


def _batch_payloads(campaign: Campaign, size: int) -> list[dict[str, Any]]:
    ids = list(
        Message.objects.filter(campaign=campaign, status=Message.Status.QUEUED)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return [
        {"campaign_id": campaign.pk, "first_id": chunk[0], "last_id": chunk[-1]}
        for chunk in (ids[i : i + size] for i in range(0, len(ids), size))
    ]


@transaction.atomic
def launch_campaign(campaign: Campaign, *, job: Job | None = None) -> int:
    """Snapshot the recipients and enqueue their batch jobs, once; returns how many batches.

    Runs in the campaign's launch job: one it enqueued (running, or scheduled and now due) or
    one a schedule started (a draft starts then). The campaign row is locked, so a cancel waits
    for this to commit (and then cancels the batches), or wins and nothing is snapshotted. A
    campaign that cannot start raises PermanentError saying why.
    """
    campaign = (
        Campaign.objects.select_for_update(of=("self",))
        .select_related("tenant")
        .get(pk=campaign.pk)
    )
    if campaign.status == Campaign.Status.RUNNING and campaign.batch_id:
        return 0  # launched already: this is a repeat delivery
    if campaign.status not in LAUNCHABLE:
        raise PermanentError(
            f"Campaign {campaign.pk} is {campaign.status}: it cannot start (again). "
            "Create a new campaign, or start a draft."
        )
    if campaign.status != Campaign.Status.RUNNING:
        campaign.status, campaign.started_at = Campaign.Status.RUNNING, timezone.now()
        campaign.job = campaign.job or job
        campaign.save(update_fields=["status", "started_at", "job"])
    campaign.recipients = snapshot_recipients(campaign)
    payloads = _batch_payloads(campaign, settings.CONVEYOR_CAMPAIGN_BATCH_SIZE)
    if not payloads:
        campaign.save(update_fields=["recipients"])
        finish_campaign(campaign)
        return 0
    campaign.batch = create_batch(
        tenant=campaign.tenant,
        callback_kind=FINISH_KIND,
        callback_payload={"campaign_id": campaign.pk},
        description=f"Campaign {campaign.name}"[:200],
    )
    enqueue_jobs(
        tenant=campaign.tenant,
        kind=BATCH_KIND,
        payloads=payloads,
        by=campaign.created_by,
        queue=queue_for(campaign.channel),
        batch=campaign.batch,
        parent=job,
    )
    campaign.save(update_fields=["recipients", "batch"])
    return len(payloads)


def batch_messages(campaign: Campaign, *, first_id: int, last_id: int) -> list[Message]:
    """The messages of one batch that are still to send, in id order."""
    return list(
        Message.objects.filter(
            campaign=campaign, pk__gte=first_id, pk__lte=last_id, status__in=Message.PENDING
        )
        .select_related("contact")
        .order_by("pk")
    )


def campaign_template(campaign: Campaign) -> MessageTemplate | BuiltinTemplate | str:
    """The template a batch renders, looked up once; its name if it is gone (each recipient's
    message then fails saying so)."""
    try:
        return resolve_template(campaign.template, tenant=campaign.tenant, channel=campaign.channel)
    except ValidationError:
        return campaign.template


def send_to_recipients(
    campaign: Campaign,
    messages: list[Message],
    *,
    template: MessageTemplate | BuiltinTemplate | str,
    job: Job | None,
    rate: str | None,
    final: bool,
    route: Route | None = None,
    concurrency: int = 1,
) -> list[Delivery]:
    """Render the campaign's template for each recipient, wait for the rate limit for each,
    then send them once, `concurrency` provider calls at a time."""
    outcomes: dict[int, Delivery] = {}
    ready = []
    for message in messages:
        skipped = _prepare(campaign, message, template=template, rate=rate)
        if skipped is not None:
            outcomes[message.pk] = skipped
        else:
            ready.append(message)
    if ready:
        sent = deliver_many(ready, job=job, final=final, route=route, concurrency=concurrency)
        outcomes.update(zip((m.pk for m in ready), sent, strict=True))
    return [outcomes[message.pk] for message in messages]


def _prepare(
    campaign: Campaign,
    message: Message,
    *,
    template: MessageTemplate | BuiltinTemplate | str,
    rate: str | None,
) -> Delivery | None:
    """None when `message` is ready to send (rendered, its rate token taken), else why not."""
    if message.status != Message.Status.QUEUED:
        return None  # `sending`: deliver settles it (outcome unknown)
    contact = message.contact
    if contact is None:
        return mark_skipped(message, "The contact was deleted.")
    if contact.opted_out:
        return mark_skipped(message, "The contact opted out.")
    try:
        rendered = render_template(
            template,
            tenant=campaign.tenant,
            channel=campaign.channel,
            context={**campaign.variables, "contact": contact},
        )
    except ValidationError as error:
        return mark_failed(message, "; ".join(error.messages))
    message.subject, message.html, message.text = (
        rendered.subject[:500],
        rendered.html,
        rendered.text,
    )
    wait_for_turn(campaign.tenant, campaign.channel, rate)
    return None


@transaction.atomic
def cancel_campaign(campaign: Campaign, *, by: Actor = None) -> Campaign:
    """Stop the campaign between recipients: its waiting messages and batches never run."""
    locked = (
        Campaign.objects.select_for_update(of=("self",))
        .select_related("tenant")
        .get(pk=campaign.pk)
    )
    if locked.status == Campaign.Status.CANCELED:
        return locked
    if locked.is_ended:
        raise InvalidTransition(f"Campaign {locked.pk} already {locked.status}.")
    locked.status, locked.cancel_requested_at = Campaign.Status.CANCELED, timezone.now()
    locked.save(update_fields=["status", "cancel_requested_at"])
    Message.objects.filter(campaign=locked, status=Message.Status.QUEUED).update(
        status=Message.Status.CANCELED,
        error="The campaign was canceled.",
        updated_at=timezone.now(),
    )
    if locked.job_id:
        cancel_jobs(Job.objects.filter(pk=locked.job_id, status__in=Job.ACTIVE), by=by)
    if locked.batch_id:
        # The last batch job to end enqueues the campaign's callback, which finishes it.
        cancel_jobs(Job.objects.filter(batch_id=locked.batch_id, status__in=Job.ACTIVE), by=by)
    else:
        finish_campaign(locked)
    return locked


@transaction.atomic
def finish_campaign(campaign: Campaign) -> Campaign:
    """Record the final totals, publish campaign.finished and notify whoever created it.

    Messages its batch jobs left unsent (a batch failed, or was canceled mid-message) fail.
    """
    campaign = (
        Campaign.objects.select_for_update(of=("self",))
        .select_related("tenant", "created_by")
        .get(pk=campaign.pk)
    )
    if campaign.finished_at is not None:
        return campaign
    _fail_leftovers(campaign)
    totals = campaign_totals(campaign)
    if campaign.status == Campaign.Status.RUNNING:
        batch_failed = bool(campaign.batch_id) and (
            Job.objects.filter(batch=campaign.batch, status=Job.Status.FAILED).exists()
        )
        campaign.status = Campaign.Status.FAILED if batch_failed else Campaign.Status.FINISHED
    campaign.sent, campaign.failed = totals["sent"], totals["failed"]
    campaign.skipped, campaign.canceled = totals["skipped"], totals["canceled"]
    campaign.recipients = totals["recipients"]
    campaign.finished_at = timezone.now()
    campaign.save(
        update_fields=[
            "status",
            "sent",
            "failed",
            "skipped",
            "canceled",
            "recipients",
            "finished_at",
        ]
    )
    _announce(campaign, totals)
    return campaign


def _fail_leftovers(campaign: Campaign) -> None:
    now = timezone.now()
    pending = Message.objects.filter(campaign=campaign)
    pending.filter(status=Message.Status.SENDING).update(
        status=Message.Status.FAILED,
        error="Outcome unknown: its batch ended while it was being sent.",
        updated_at=now,
    )
    leftover = Message.Status.CANCELED if campaign.status == Campaign.Status.CANCELED else None
    pending.filter(status=Message.Status.QUEUED).update(
        status=leftover or Message.Status.FAILED,
        error="The campaign was canceled." if leftover else "Its batch job failed.",
        updated_at=now,
    )


def _announce(campaign: Campaign, totals: dict[str, int]) -> None:
    summary = (
        f"{totals['sent']:,} sent, {totals['failed']:,} failed, {totals['skipped']:,} skipped"
        + (f", {totals['canceled']:,} canceled" if totals["canceled"] else "")
        + f" of {totals['recipients']:,}."
    )
    publish_event(
        campaign.tenant,
        "campaign.finished",
        {"id": campaign.pk, "name": campaign.name, "status": campaign.status, **totals},
    )
    if campaign.created_by is None:
        return
    notify_user(
        campaign.created_by,
        tenant=campaign.tenant,
        title=f"Campaign {campaign.name!r} {campaign.status}"[:200],
        body=summary,
        link=absolute_url(reverse("admin:communications_campaign_change", args=[campaign.pk])),
        email_template=FINISHED_EMAIL_TEMPLATE,
        context=finished_email_context(campaign, totals),
    )


def finished_email_context(campaign: Campaign, totals: dict[str, int]) -> dict[str, Any]:
    """The `campaign-finished` email's variables: the campaign, its totals, absolute links."""
    admin = reverse("admin:communications_campaign_change", args=[campaign.pk])
    failed = reverse("admin:communications_message_changelist")
    return {
        "campaign": {"name": campaign.name, "status": campaign.status, **totals},
        "campaign_url": absolute_url(admin),
        "failed_url": absolute_url(
            f"{failed}?campaign__id__exact={campaign.pk}&status__exact=failed"
        ),
    }


def _copy(source: Campaign, target: Campaign, *fields: str) -> None:
    for name in fields:
        setattr(target, name, getattr(source, name))
