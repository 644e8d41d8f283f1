"""Reads of batches: the tenant's batches, and one batch's members counted by status."""

from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet

from jobs.models import Batch, Job
from tenants.models import Tenant


def list_batches(*, tenant: Tenant | None) -> QuerySet[Batch]:
    """Batches of `tenant`, newest first; None means every tenant (operators only)."""
    batches = Batch.objects.all() if tenant is None else Batch.objects.for_tenant(tenant)
    return batches.select_related("tenant").order_by("-created_at")


def get_batch(*, tenant: Tenant, batch_id: UUID | str) -> Batch:
    """The tenant's batch; another tenant's id raises Batch.DoesNotExist like a missing one."""
    try:
        return list_batches(tenant=tenant).get(pk=batch_id)
    except (ValueError, TypeError, ValidationError, Batch.DoesNotExist):
        raise Batch.DoesNotExist(f"No batch {batch_id}.") from None


def batch_counts(batch: Batch) -> dict[str, int]:
    """How many members are in each status (every status named, zeros included)."""
    found = dict(
        Job.objects.filter(batch=batch, tenant_id=batch.tenant_id)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {status: found.get(status, 0) for status in Job.Status.values}


def batch_progress(counts: dict[str, int]) -> int:
    """Percent of members that have ended."""
    total = sum(counts.values())
    ended = sum(counts[status] for status in Job.FINISHED)
    return 100 if not total else ended * 100 // total
