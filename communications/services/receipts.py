"""Delivery receipts: accepted fast (one job per request), then recorded by that job as each
message's delivery timeline; a hard bounce, a complaint or a STOP opts the contact out."""

import logging
from collections.abc import Sequence
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils.dateparse import parse_datetime

from communications.addresses import normalize_email, normalize_phone
from communications.models import Channel, Contact, DeliveryEvent, Message, Sender
from communications.receipts import Receipt
from communications.services.contacts import update_contact
from jobs.models import Job
from jobs.services.jobs import enqueue_job

logger = logging.getLogger(__name__)

RECORD_KIND = "communications.record_receipts"
OPT_OUT = "opt_out"
OPTING_OUT = {Message.Delivery.BOUNCED, Message.Delivery.COMPLAINED}
# A later receipt never moves the message's status back (a late "delivered" after "read").
RANK: dict[str, int] = {
    Message.Delivery.DELIVERED: 1,
    Message.Delivery.READ: 2,
    Message.Delivery.FAILED: 3,
    Message.Delivery.BOUNCED: 3,
    Message.Delivery.COMPLAINED: 4,
}


def accept_receipts(sender: Sender, receipts: Sequence[Receipt]) -> Job | None:
    """Queue the recording of `receipts` (the webhook answers at once); None if there are none."""
    if not receipts:
        return None
    return enqueue_job(
        tenant=sender.tenant,
        kind=RECORD_KIND,
        payload={"sender_id": str(sender.pk), "receipts": list(receipts)},
    )


def record_receipts(*, sender: Sender, receipts: Sequence[Receipt]) -> dict[str, int]:
    """Add each receipt to its message's timeline and opt out who asked; counts what it did."""
    counts = {"recorded": 0, "unknown": 0, "opted_out": 0}
    for receipt in receipts:
        if receipt["status"] == OPT_OUT:
            counts["opted_out"] += opt_out(sender, receipt["address"], reason=receipt["detail"])
        elif record_receipt(sender, receipt):
            counts["recorded"] += 1
        else:
            counts["unknown"] += 1
    return counts


@transaction.atomic
def record_receipt(sender: Sender, receipt: Receipt) -> bool:
    """One step of a message's delivery; False when no message of the sender has that id."""
    message = (
        Message.objects.for_tenant(sender.tenant)
        .select_for_update(of=("self",))
        .filter(provider_message_id=receipt["provider_message_id"])
        .filter(Q(sender=sender) | Q(sender__isnull=True, channel=sender.channel))
        .select_related("contact")
        .first()
    )
    if message is None:
        return False
    at = parse_datetime(receipt["occurred_at"]) or datetime.now().astimezone()
    status = receipt["status"]
    DeliveryEvent.objects.bulk_create(
        [
            DeliveryEvent(
                tenant=sender.tenant,
                message=message,
                status=status,
                occurred_at=at,
                detail=receipt["detail"],
            )
        ],
        ignore_conflicts=True,  # a receipt the provider repeats is kept once
    )
    if RANK[status] >= RANK.get(message.delivery_status, 0):
        message.delivery_status, message.delivery_updated_at = status, at
        message.save(update_fields=["delivery_status", "delivery_updated_at", "updated_at"])
    if status in OPTING_OUT and message.contact is not None:
        _opt_out_contact(message.contact, reason=status)
    return True


def opt_out(sender: Sender, address: str, *, reason: str) -> int:
    """Opt out the tenant's contact with `address` (a STOP reply, an unsubscribe); 0 or 1."""
    try:
        if sender.channel == Channel.EMAIL:
            found = {"email": normalize_email(address)}
        else:
            found = {"phone": normalize_phone(address, region=sender.tenant.default_region)}
    except ValidationError:
        logger.warning("tenant=%s: an opt-out for an unreadable address", sender.tenant_id)
        return 0
    contact = Contact.objects.for_tenant(sender.tenant).filter(**found).first()
    if contact is None:
        return 0
    return _opt_out_contact(contact, reason=reason)


def _opt_out_contact(contact: Contact, *, reason: str) -> int:
    if contact.opted_out:
        return 0
    update_contact(contact, opted_out=True)
    logger.info("tenant=%s contact=%s opted out: %s", contact.tenant_id, contact.pk, reason)
    return 1
