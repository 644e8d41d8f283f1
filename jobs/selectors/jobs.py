"""Reads of jobs: the tenant-scoped job list, one job, its log."""

from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from jobs.models import Job, JobLog
from tenants.models import Tenant


def list_jobs(*, tenant: Tenant | None) -> QuerySet[Job]:
    """Jobs of `tenant`, newest first; None means every tenant (operators only)."""
    jobs = Job.objects.all() if tenant is None else Job.objects.for_tenant(tenant)
    return jobs.select_related("tenant").order_by("-created_at")


def get_job(*, tenant: Tenant, job_id: UUID | str) -> Job:
    """The tenant's job; another tenant's id raises Job.DoesNotExist like a missing one."""
    try:
        return list_jobs(tenant=tenant).get(pk=job_id)
    except (ValueError, TypeError, ValidationError, Job.DoesNotExist):
        raise Job.DoesNotExist(f"No job {job_id}.") from None


def job_logs(job: Job) -> QuerySet[JobLog]:
    return JobLog.objects.filter(job=job, tenant_id=job.tenant_id).order_by("created_at", "id")


def tenant_logs(tenant: Tenant) -> QuerySet[JobLog]:
    """Every log line of the tenant's jobs, newest first."""
    return JobLog.objects.for_tenant(tenant).order_by("-created_at", "-id")
