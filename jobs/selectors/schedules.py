"""Reads of schedules: a tenant's list and one schedule."""

from typing import Any

from django.db.models import QuerySet

from jobs.models import Schedule
from tenants.models import Tenant


def list_schedules(
    *, tenant: Tenant, enabled: bool | None = None, kind: str = ""
) -> QuerySet[Schedule]:
    """The tenant's schedules by name, with their last jobs; optionally only enabled/one kind."""
    schedules = Schedule.objects.for_tenant(tenant).select_related("last_job")
    if enabled is not None:
        schedules = schedules.filter(enabled=enabled)
    if kind:
        schedules = schedules.filter(kind=kind)
    return schedules.order_by("name", "pk")


def get_schedule(*, tenant: Tenant, pk: Any) -> Schedule:
    """The tenant's schedule `pk`; another tenant's raises DoesNotExist, like a missing one."""
    return Schedule.objects.for_tenant(tenant).select_related("tenant", "last_job").get(pk=pk)
