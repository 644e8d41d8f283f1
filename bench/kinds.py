"""Job kinds only the bench uses; its worker processes load them through CONVEYOR_PRELOAD."""

import time

from jobs.kinds import job_kind
from jobs.runtime.context import JobContext


@job_kind("bench.wait", queue="default")
def wait(ctx: JobContext, *, ms: int = 100) -> None:
    """Wait `ms` milliseconds, as a call to an email provider or a webhook receiver does."""
    time.sleep(ms / 1000)
