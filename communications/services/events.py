"""Publishing webhook events: each event becomes one delivery per subscribed endpoint, each
delivery its own job on the `webhooks` queue. A leaf every area's services publish through."""

import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from communications.models import EventType, WebhookDelivery, WebhookEndpoint
from communications.models.webhooks import ALL_EVENTS
from communications.signals import event_published
from jobs.services.jobs import enqueue_jobs
from tenants.models import Tenant
from tenants.users import Actor

logger = logging.getLogger(__name__)

DELIVER_KIND = "communications.deliver_webhook"
SUBSCRIBABLE = [value for value in EventType.values if value != EventType.WEBHOOK_TEST]


def publish_event(tenant: Tenant, type: str, data: dict[str, Any]) -> None:
    """Deliver event `type` with `data` to the tenant's subscribed endpoints, after commit."""
    if type not in SUBSCRIBABLE:
        raise ValueError(f"Unknown webhook event type {type!r}.")
    event = make_event(tenant, type, data)
    # robust: a failure to record deliveries is logged and never breaks the caller's commit.
    transaction.on_commit(lambda: _deliver_event(tenant, event), robust=True)
    transaction.on_commit(lambda: _announce(tenant, event), robust=True)


def _announce(tenant: Tenant, event: dict[str, Any]) -> None:
    """Tell `event_published` receivers (automations); one's error does not stop the others."""
    for receiver, outcome in event_published.send_robust(sender=Tenant, tenant=tenant, event=event):
        if isinstance(outcome, Exception):
            logger.error(
                "tenant=%s event=%s %s: %r failed: %s",
                tenant.pk,
                event["id"],
                event["type"],
                receiver,
                outcome,
                exc_info=outcome,
            )


def make_event(tenant: Tenant, type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The body every endpoint receives; `data` is copied as JSON now, as it is at publishing."""
    return {
        "id": str(uuid.uuid4()),
        "type": type,
        "created": timezone.now().isoformat(),
        "tenant": tenant.slug,
        "data": json.loads(json.dumps(data, cls=DjangoJSONEncoder)),
    }


def _deliver_event(tenant: Tenant, event: dict[str, Any]) -> list[WebhookDelivery]:
    if not tenant.is_active:
        return []
    subscribed = Q(event_types__contains=[event["type"]]) | Q(event_types__contains=[ALL_EVENTS])
    endpoints = list(WebhookEndpoint.objects.for_tenant(tenant).filter(subscribed, is_active=True))
    if not endpoints:
        return []
    return create_deliveries(tenant, event, endpoints)


@transaction.atomic
def create_deliveries(
    tenant: Tenant, event: dict[str, Any], endpoints: Sequence[WebhookEndpoint], *, by: Actor = None
) -> list[WebhookDelivery]:
    """One delivery per endpoint, each handed to its own job on the webhooks queue."""
    deliveries = [
        WebhookDelivery(
            tenant=tenant,
            endpoint=endpoint,
            event_id=event["id"],
            event_type=event["type"],
            payload=event,
        )
        for endpoint in endpoints
    ]
    jobs = enqueue_jobs(
        tenant=tenant,
        kind=DELIVER_KIND,
        payloads=[{"delivery_id": str(delivery.pk)} for delivery in deliveries],
        by=by,
    )
    for delivery, job in zip(deliveries, jobs, strict=True):
        delivery.job = job
    return WebhookDelivery.objects.bulk_create(deliveries)
