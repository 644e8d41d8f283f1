"""Reads of the webhooks area: a tenant's endpoints, deliveries and delivery attempts."""

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from communications.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tenants.models import Tenant


def list_endpoints(*, tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.for_tenant(tenant).order_by("-created_at", "-pk")


def get_endpoint(*, tenant: Tenant, pk: Any) -> WebhookEndpoint:
    """The tenant's endpoint; another tenant's raises DoesNotExist like a missing one."""
    return WebhookEndpoint.objects.for_tenant(tenant).get(pk=pk)


def list_deliveries(
    *,
    tenant: Tenant,
    endpoint: Any = None,
    status: str = "",
    event_type: str = "",
    event_id: Any = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[WebhookDelivery]:
    """The tenant's deliveries, newest first, narrowed by whichever filters are given."""
    deliveries = WebhookDelivery.objects.for_tenant(tenant)
    if endpoint is not None:
        deliveries = deliveries.filter(endpoint=endpoint)
    if status:
        deliveries = deliveries.filter(status=status)
    if event_type:
        deliveries = deliveries.filter(event_type=event_type)
    if event_id is not None:
        deliveries = deliveries.filter(event_id=event_id)
    if created_after is not None:
        deliveries = deliveries.filter(created_at__gte=created_after)
    if created_before is not None:
        deliveries = deliveries.filter(created_at__lt=created_before)
    return deliveries.order_by("-created_at", "-pk")


def get_delivery(*, tenant: Tenant, pk: Any) -> WebhookDelivery:
    """The tenant's delivery with its endpoint; another tenant's raises DoesNotExist."""
    return WebhookDelivery.objects.for_tenant(tenant).select_related("endpoint").get(pk=pk)


def delivery_attempts(delivery: WebhookDelivery) -> QuerySet[WebhookAttempt]:
    return WebhookAttempt.objects.filter(tenant_id=delivery.tenant_id, delivery=delivery)
