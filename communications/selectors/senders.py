"""Reads of a tenant's senders and of a message's delivery timeline."""

from django.db.models import QuerySet

from communications import secrets
from communications.models import DeliveryEvent, Message, Sender
from tenants.models import Tenant


def list_senders(*, tenant: Tenant) -> QuerySet[Sender]:
    """The tenant's senders, one per channel at most."""
    return Sender.objects.for_tenant(tenant).order_by("channel")


def get_sender(*, tenant: Tenant, channel: str) -> Sender:
    """The tenant's sender for `channel`; Sender.DoesNotExist (a 404) when it has none."""
    return Sender.objects.for_tenant(tenant).select_related("tenant").get(channel=channel)


def stored_secret_names(sender: Sender) -> list[str]:
    """Which credentials are stored (their names only; values are never read back out)."""
    try:
        return sorted(secrets.decrypt(sender.credentials))
    except secrets.UnreadableSecret:
        return []


def delivery_timeline(message: Message) -> list[DeliveryEvent]:
    """What the provider reported after `message` was sent, oldest first."""
    return list(DeliveryEvent.objects.filter(message=message).order_by("occurred_at", "id"))
