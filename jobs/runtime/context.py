"""What a job body gets besides its payload: `JobContext`."""

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from jobs.errors import JobCanceled, Snooze
from jobs.models import Job, JobLog
from jobs.services.jobs import add_log
from jobs.transport import queueing

logger = logging.getLogger("jobs.runtime.runner")

STOP_CHECK_INTERVAL = 0.2
PROGRESS_STEP = 10
PROGRESS_SECONDS = 5.0

# Apps above the engine that chain jobs (workflows) say where a job's parents' results are:
# each provider returns them by name, or None when the job is not one of theirs.
ParentResults = Callable[[Job], dict[str, Any] | None]
_PARENT_RESULTS: list[ParentResults] = []


def register_parent_results(provider: ParentResults) -> None:
    """Let `provider` answer `ctx.parent_results` for the jobs it knows."""
    if provider not in _PARENT_RESULTS:
        _PARENT_RESULTS.append(provider)


class JobContext:
    """What a job body gets besides its payload: its row, progress, cancel checks and a log."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.tenant = job.tenant
        self.attempt = job.attempt
        self.logger = logger  # its lines carry the job, kind, tenant and attempt already
        self._logged_percent = job.progress
        self._logged_at = time.monotonic()
        self._checked_at = 0.0

    @functools.cached_property
    def parent_results(self) -> dict[str, Any]:
        """The results of the jobs this one waited for: a workflow step's parents by step name,
        else its `depends_on` jobs by id."""
        for provider in _PARENT_RESULTS:
            found = provider(self.job)
            if found is not None:
                return found
        pairs = self.job.depends_on.values_list("pk", "result")
        return {str(pk): result for pk, result in pairs}

    def progress(self, percent: float, message: str = "") -> None:
        """Report how far the job is; stored at most once per 10 % or per 5 s."""
        percent = max(0, min(100, int(percent)))
        now = time.monotonic()
        step = percent - self._logged_percent >= PROGRESS_STEP
        if not (step or now - self._logged_at >= PROGRESS_SECONDS or percent == 100):
            return
        if percent == self._logged_percent and percent == 100:
            return
        self._logged_percent, self._logged_at = percent, now
        Job.objects.filter(pk=self.job.pk, status=Job.Status.STARTED).update(
            progress=percent, progress_message=message[:200]
        )
        self.job.progress, self.job.progress_message = percent, message[:200]
        add_log(self.job, JobLog.Event.PROGRESS, message, data={"percent": percent})

    def stop_if_canceled(self) -> None:
        """Raise JobCanceled once a cancel was requested (checked at most every 0.2 s)."""
        now = time.monotonic()
        if now - self._checked_at < STOP_CHECK_INTERVAL:
            return
        self._checked_at = now
        if queueing.is_cancel_requested(self.job):
            raise JobCanceled(self.job.progress_message or f"{self.job.progress}% done")

    def log(self, message: str, *, level: str = JobLog.Level.INFO, **data: Any) -> None:
        """Add a line to the job's log."""
        add_log(self.job, JobLog.Event.NOTE, message, level=level, data=data)

    def snooze(self, seconds: float) -> None:
        """Stop here and run again in `seconds` without using an attempt (raises `Snooze`).

        For "not yet" rather than "failed": a provider asks to wait, a file has not arrived.
        A kind's `max_snoozes` (default CONVEYOR_MAX_SNOOZES) bounds it; later snoozes count
        as attempts.
        """
        raise Snooze(seconds)
