"""Webhook events and their deliveries."""

from typing import Any

from tenants.models import Tenant


def publish_event(tenant: Tenant, type: str, data: dict[str, Any]) -> None:
    """Deliver event `type` with `data` to the tenant's subscribed endpoints, after commit."""
