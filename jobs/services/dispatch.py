"""Tenants' dispatch settings (weight, paused queues) mirrored into Redis, where every worker's
take reads them: a change applies at the next take, without restarting anything."""

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from redis.exceptions import RedisError

from jobs.transport import fair, queueing
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def mirror_tenant(tenant: Tenant) -> None:
    """Write the tenant's weight and paused queues to Redis (after the commit, if in one)."""
    weight, paused, tenant_id = tenant.weight, list(tenant.paused_queues), tenant.pk

    def write() -> None:
        try:
            fair.set_tenant_state(
                queueing.connection(),
                tenant_id,
                weight=weight,
                paused=paused,
                queues=list(settings.CONVEYOR_QUEUES),
            )
        except RedisError as error:
            # The reconciler writes every tenant's state again each minute.
            logger.warning("tenant=%s dispatch not mirrored to Redis: %s", tenant_id, error)

    transaction.on_commit(write)


def mirror_all() -> int:
    """Mirror every tenant whose dispatch differs from the default (after Redis lost it)."""
    tenants = Tenant.objects.filter(~Q(weight=1) | ~Q(paused_queues=[]))
    count = 0
    for tenant in tenants.only("pk", "weight", "paused_queues"):
        mirror_tenant(tenant)
        count += 1
    return count


def on_tenant_saved(
    sender: Any, instance: Tenant, update_fields: Any = None, **kwargs: Any
) -> None:
    if update_fields is None or {"weight", "paused_queues"} & set(update_fields):
        mirror_tenant(instance)
