"""Kinds used only by the tests; worker processes load them through CONVEYOR_PRELOAD."""

import logging
import os
import signal
import time
from typing import Any

from django.db import transaction

from jobs.errors import RetryableError
from jobs.kinds import job_kind
from jobs.runtime.context import JobContext
from tenants.models import Role, Tenant

logger = logging.getLogger(__name__)


def _pause(seconds: float) -> None:
    """Sleep in short steps, as I/O with a short timeout does: a stop request lands in between."""
    until = time.time() + seconds
    while (left := until - time.time()) > 0:
        time.sleep(min(left, 0.05))


def _span(seconds: float) -> dict[str, Any]:
    started = time.time()
    time.sleep(seconds)
    return {"start": started, "end": time.time()}


@job_kind("tests.rate_limited", queue="default", rate_limit="10/s", public=True)
def rate_limited(ctx: JobContext, **payload: Any) -> dict[str, Any]:
    """Record when it ran; at most ten start per second per tenant."""
    return _span(0)


@job_kind("tests.two_at_once", queue="default", concurrency=2, public=True)
def two_at_once(ctx: JobContext, *, seconds: float = 0.3) -> dict[str, Any]:
    """Record when it ran; at most two run at once per tenant."""
    return _span(seconds)


@job_kind("tests.email_noop", queue="email", public=True)
def email_noop(ctx: JobContext, **payload: Any) -> None:
    """A no-op on the email queue."""


@job_kind("tests.for_admins", queue="default", public=True, role=Role.ADMIN)
def for_admins(ctx: JobContext, **payload: Any) -> None:
    """A no-op that only a tenant's admins and owners may enqueue (or run again)."""


@job_kind("tests.collect", queue="default", public=True)
def collect(ctx: JobContext, **payload: Any) -> dict[str, Any]:
    """A batch callback: hands back what it was given."""
    return payload


@job_kind("tests.log_and_retry", queue="default", max_attempts=2, public=True)
def log_and_retry(ctx: JobContext) -> None:
    """Write a log line, then fail the first attempt so a second one runs at once."""
    logger.info("working on it")
    if ctx.attempt == 1:
        raise RetryableError("once more", delay=0)


@job_kind("tests.record_then_sleep", queue="default", max_attempts=3, public=True)
def record_then_sleep(ctx: JobContext, *, seconds: float = 0) -> None:
    """Insert a row keyed by the job id (once, however often it runs), then sleep on attempt 1.

    The row is a tenant whose slug is the job id; its name is the pid of the process that ran
    the job, so a test can kill a forking worker's work horse.
    """
    Tenant.objects.get_or_create(slug=f"effect-{ctx.job.pk}", defaults={"name": str(os.getpid())})
    if ctx.attempt == 1:
        _pause(seconds)


@job_kind("tests.sleep_then_record", queue="default", max_attempts=5, public=True)
def sleep_then_record(ctx: JobContext, *, seconds: float = 0) -> None:
    """Sleep, then insert a row keyed by the job id: once, however often the job runs."""
    _pause(seconds)
    Tenant.objects.get_or_create(slug=f"effect-{ctx.job.pk}", defaults={"name": str(os.getpid())})


@job_kind("tests.step_then_record", queue="default", max_attempts=3)
def step_then_record(ctx: JobContext, *, steps: int = 10, seconds: float = 0.1) -> None:
    """Report progress `steps` times, `seconds` apart, then make its effect once (`ctx.once`)."""
    for step in range(1, steps + 1):
        time.sleep(seconds)
        ctx.progress(step * 100 / steps - 1, f"attempt {ctx.attempt} step {step}")
    with transaction.atomic():
        if ctx.once(f"effect:{ctx.job.pk}"):
            Tenant.objects.create(slug=f"effect-{ctx.job.pk}-{ctx.attempt}", name=str(os.getpid()))


@job_kind("tests.hold_interpreter", queue="default", max_attempts=2, timeout=1)
def hold_interpreter(ctx: JobContext) -> None:
    """One long C call that never gives the interpreter back: no alarm can interrupt it."""
    sum(range(10**12))


@job_kind("tests.crash_process", queue="default", max_attempts=2)
def crash_process(ctx: JobContext) -> None:
    """A poison job: it kills the process running it, every attempt."""
    os.kill(os.getpid(), signal.SIGKILL)


@job_kind("tests.wait", queue="default")
def wait(ctx: JobContext, *, seconds: float = 0.1) -> dict[str, Any]:
    """Wait as a call to a slow service with a short socket timeout does; record when it ran."""
    started = time.time()
    _pause(seconds)
    return {"start": started, "end": time.time()}


@job_kind("tests.swallow_everything", queue="default", timeout=1, max_attempts=2)
def swallow_everything(ctx: JobContext, *, seconds: float = 30) -> dict[str, Any]:
    """Run past its one-second timeout on attempt 1, catching every Exception; then succeed."""
    started = time.time()
    while ctx.attempt == 1 and time.time() - started < seconds:
        try:
            time.sleep(0.05)
        except Exception:
            logger.info("swallowed")
    return {"start": started, "end": time.time()}


@job_kind("tests.snooze_then_succeed", queue="default", max_attempts=1)
def snooze_then_succeed(ctx: JobContext, *, times: int = 2) -> dict[str, Any]:
    """Snooze for a second `times` times, then succeed."""
    if ctx.job.snoozes < times:
        ctx.snooze(1)
    return {"attempt": ctx.attempt, "snoozes": ctx.job.snoozes}


@job_kind("tests.always_snooze", queue="default", max_attempts=2, max_snoozes=1)
def always_snooze(ctx: JobContext) -> None:
    """Never ready: snoozes every time it runs."""
    ctx.snooze(1)


@job_kind("tests.fixed_backoff", queue="default", max_attempts=4, backoff=[1, 3])
def fixed_backoff(ctx: JobContext) -> None:
    """Fails every attempt; waits 1 s, then 3 s, then 3 s again."""
    raise RetryableError("not yet")
