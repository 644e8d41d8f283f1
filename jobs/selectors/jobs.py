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


def workflow_key_prefix(workflow_id: object) -> str:
    """How every job of a workflow's steps is keyed: `workflow:<id>:<step>` (the workflows app
    above writes the keys; the job list filters by them without knowing that app)."""
    return f"workflow:{workflow_id}:"


def of_workflow(jobs: QuerySet[Job], workflow_id: UUID | str) -> QuerySet[Job]:
    """The jobs of `jobs` that ran a step of the workflow."""
    return jobs.filter(idempotency_key__startswith=workflow_key_prefix(workflow_id))


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
