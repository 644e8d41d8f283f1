"""Built-in kinds for operators and demos: a no-op, a sleeper that reports progress, a failer."""

import time
from typing import Any

from rest_framework import serializers

from jobs.errors import PermanentError, RetryableError
from jobs.kinds import job_kind
from jobs.runtime.context import JobContext
from jobs.runtime.reconciler import reconcile
from jobs.services.cleanup import clean_up_jobs


@job_kind("jobs.noop", queue="default", public=True)
def noop(ctx: JobContext, **payload: Any) -> dict[str, Any]:
    """Do nothing and succeed, echoing the payload."""
    return payload


class SleepPayload(serializers.Serializer):
    seconds = serializers.FloatField(min_value=0, max_value=3600)
    steps = serializers.IntegerField(min_value=1, max_value=1000, default=10)


@job_kind("jobs.sleep", queue="default", payload=SleepPayload, public=True)
def sleep(ctx: JobContext, *, seconds: float, steps: int = 10) -> dict[str, Any]:
    """Sleep for `seconds` in `steps`, reporting progress and stopping if canceled."""
    for step in range(1, steps + 1):
        ctx.stop_if_canceled()
        time.sleep(seconds / steps)
        ctx.progress(step * 100 / steps, f"{step} of {steps} steps")
    return {"slept": seconds}


class FailPayload(serializers.Serializer):
    times = serializers.IntegerField(
        min_value=0, default=1, help_text="Fail this many attempts, then succeed."
    )
    permanent = serializers.BooleanField(default=False, help_text="Fail at once, never retry.")
    message = serializers.CharField(default="failing on purpose", max_length=500)


@job_kind("jobs.fail", queue="default", payload=FailPayload, backoff_base=1.0, public=True)
def fail(ctx: JobContext, *, times: int = 1, permanent: bool = False, message: str = "") -> str:
    """Fail the first `times` attempts (or every one, permanently), then succeed."""
    if permanent:
        raise PermanentError(message)
    if ctx.attempt <= times:
        raise RetryableError(f"{message} (attempt {ctx.attempt})")
    return f"succeeded on attempt {ctx.attempt}"


@job_kind("jobs.reconcile_jobs", queue="maintenance", max_attempts=1)
def reconcile_jobs(ctx: JobContext) -> dict[str, Any]:
    """Hand pending jobs to Redis, re-push lost ones, rescue jobs of dead workers."""
    outcome = reconcile()
    return {
        "pushed": outcome.pushed,
        "repushed": outcome.repushed,
        "rescued": outcome.rescued,
        "released": outcome.released,
        "overdue": outcome.overdue,
    }


@job_kind("jobs.clean_up_jobs", queue="maintenance", max_attempts=1)
def clean_up_old_jobs(ctx: JobContext) -> dict[str, Any]:
    """Delete finished jobs past each tenant's retention, stale RQ records and orphaned files."""

    def progress(done: int, total: int) -> None:
        ctx.stop_if_canceled()
        ctx.progress(done * 100 // max(total, 1), f"{done:,} of {total:,} jobs deleted")

    outcome = clean_up_jobs(progress=progress)
    return {
        "jobs": outcome.jobs,
        "logs": outcome.logs,
        "rq_records": outcome.rq_records,
        "files": len(outcome.files),
        "longest_batch_seconds": round(outcome.longest_batch_seconds, 3),
    }
