"""Kinds used only by the tests; worker processes load them through CONVEYOR_PRELOAD."""

import time
from typing import Any

from jobs.registry import job_kind
from jobs.runner import JobContext


def _span(seconds: float) -> dict[str, Any]:
    started = time.time()
    time.sleep(seconds)
    return {"start": started, "end": time.time()}


@job_kind("tests.rate_limited", queue="default", rate_limit="10/s")
def rate_limited(ctx: JobContext, **payload: Any) -> dict[str, Any]:
    """Record when it ran; at most ten start per second per tenant."""
    return _span(0)


@job_kind("tests.two_at_once", queue="default", concurrency=2)
def two_at_once(ctx: JobContext, *, seconds: float = 0.3) -> dict[str, Any]:
    """Record when it ran; at most two run at once per tenant."""
    return _span(seconds)


@job_kind("tests.email_noop", queue="email")
def email_noop(ctx: JobContext, **payload: Any) -> None:
    """A no-op on the email queue."""


@job_kind("tests.collect", queue="default")
def collect(ctx: JobContext, **payload: Any) -> dict[str, Any]:
    """A batch callback: hands back what it was given."""
    return payload
