"""Reads of messages: the tenant's sends, newest first, and one with its job."""

from django.db.models import QuerySet

from communications.models import Message
from tenants.models import Tenant


def list_messages(*, tenant: Tenant) -> QuerySet[Message]:
    """The tenant's messages, newest first (the API and admin filter further)."""
    return Message.objects.for_tenant(tenant).order_by("-created_at", "-id")


def get_message(*, tenant: Tenant, message_id: int) -> Message:
    """The tenant's message with its job; another tenant's raises DoesNotExist like none."""
    return list_messages(tenant=tenant).select_related("job").get(pk=message_id)
