"""The worker classes `manage.py rqworker --worker-class` names: the runner bound to RQ's side.

`ConcurrentWorker` runs up to `concurrency` jobs at once in the worker process, one thread each
(the default); `FastWorker` runs one job at a time in the worker process; `Worker` forks a work
horse per job, for queues whose jobs need memory isolation and a hard stop (`imports`,
`reports`, `maintenance`). Their RQ machinery is in `jobs.transport.workers` and
`jobs.transport.concurrent`.
"""

from datetime import datetime
from typing import Any

from jobs import tracing
from jobs.runtime import runner
from jobs.transport.concurrent import ConcurrentWorkerBase
from jobs.transport.workers import ForkingWorkerBase, InProcessWorkerBase


class _Runs:
    def run_job(self, *args: Any, **kwargs: Any) -> Any:
        return runner.execute(*args, **kwargs)

    def settle_interrupted(self, job_id: str, *, reason: str, worker: str) -> None:
        runner.settle_interrupted(job_id, reason=reason, worker=worker)

    def renew_lease(self, job_id: str, *, worker: str) -> None:
        runner.renew_lease(job_id, worker=worker)


class Worker(_Runs, ForkingWorkerBase):
    """Forks a work horse per job: isolated memory and a hard stop for a canceled job."""

    def perform_job(self, *args: Any, **kwargs: Any) -> bool:
        try:
            return super().perform_job(*args, **kwargs)
        finally:
            tracing.flush()  # the work horse ends with os._exit: batched spans would be lost


class FastWorker(_Runs, InProcessWorkerBase):
    """Runs jobs in the worker process itself: no fork and no new connections per job."""


class ConcurrentWorker(_Runs, ConcurrentWorkerBase):
    """Runs up to `concurrency` jobs at once in the worker process, one thread each."""

    def record_successes(self, successes: list[tuple[Any, Any, datetime]]) -> None:
        runner.record_successes(successes)
