"""Conveyor's RQ worker classes: priorities, paused queues, graceful shutdown, settled outcomes.

`Worker` forks a work horse per job (isolation and a hard stop on cancel); `FastWorker` runs
jobs in its own process, kept alive across jobs (no fork, no reconnect per job). Both listen
to each queue's priority sub-queues in order and skip paused queues.
"""

import importlib
import logging
import math
import signal
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.exceptions
from django import db
from django.conf import settings
from rq import Queue, SimpleWorker
from rq import Worker as RQWorker
from rq.exceptions import DequeueTimeout
from rq.job import Job as RQJob
from rq.utils import now as utcnow
from rq.worker import WorkerStatus

from jobs import queueing, runner

logger = logging.getLogger(__name__)

POLL_SECONDS = 5


class GracePeriodOver(Exception):  # noqa: N818
    """Raised in a job that outlived the shutdown grace period; the job is retried."""


def listening_order(queues: Sequence[Queue]) -> list[Queue]:
    """Each Conveyor queue becomes its priority sub-queues: all critical first, then high…"""
    expanded: dict[str, Queue] = {}
    for priority in settings.CONVEYOR_PRIORITIES:
        for queue in queues:
            if queue.name not in settings.CONVEYOR_QUEUES:
                expanded.setdefault(queue.name, queue)
                continue
            name = queueing.rq_queue_name(queue.name, priority)
            expanded.setdefault(name, _sibling(queue, name))
    return list(expanded.values())


def _sibling(queue: Queue, name: str) -> Queue:
    return type(queue)(
        name,
        connection=queue.connection,
        job_class=queue.job_class,
        serializer=queue.serializer,
        default_timeout=queue._default_timeout,
    )


def preload_modules() -> None:
    """Import heavy modules once per worker process, not in every job."""
    for name in getattr(settings, "CONVEYOR_PRELOAD", []):
        try:
            importlib.import_module(name)
        except ImportError as error:
            logger.warning("could not preload %s: %s", name, error)


if TYPE_CHECKING:
    from rq.worker import BaseWorker as _WorkerBase
else:
    _WorkerBase = object


class ConveyorWorkerMixin(_WorkerBase):
    """What both worker classes add to RQ's."""

    def __init__(self, queues: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("worker_ttl", settings.CONVEYOR_WORKER_TTL)
        kwargs.setdefault("job_monitoring_interval", settings.CONVEYOR_HEARTBEAT_SECONDS)
        super().__init__(queues, *args, **kwargs)
        self.queues = listening_order(self.queues)
        self._ordered_queues = self.queues[:]
        self._grace_timer: threading.Timer | None = None
        preload_modules()

    def _heartbeat_now_and_then(self) -> None:
        # RQ beats after every job already; between jobs once a second is plenty.
        last = self.last_heartbeat
        if last is None or (utcnow() - last).total_seconds() >= 1:
            self.heartbeat()

    def _listening_queues(self) -> list[Queue]:
        paused = queueing.paused_queues(self.connection)
        return [q for q in self.queues if queueing.logical_queue(q.name) not in paused]

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[RQJob, Queue] | None:
        """Take the next job from the queues that are not paused, highest priority first."""
        self.set_state(WorkerStatus.IDLE)
        self.procline("Listening on " + ",".join(self.queue_names()))
        idle_since = time.monotonic()
        while True:
            self._heartbeat_now_and_then()
            if self.should_run_maintenance_tasks:
                self.run_maintenance_tasks()
            result = self._dequeue_once(None if timeout is None else min(timeout, POLL_SECONDS))
            if result is not None:
                return result
            idle = time.monotonic() - idle_since
            if timeout is None or (max_idle_time is not None and idle >= max_idle_time):
                return None

    def _dequeue_once(self, timeout: int | None) -> tuple[RQJob, Queue] | None:
        queues = self._listening_queues()
        if not queues:
            if timeout:
                time.sleep(timeout)
            return None
        try:
            result = self.queue_class.dequeue_any(
                queues,
                timeout,
                connection=self.connection,
                job_class=self.job_class,
                serializer=self.serializer,
                death_penalty_class=self.death_penalty_class,
            )
        except DequeueTimeout:
            return None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            logger.error("worker %s: Redis unreachable (%s), retrying", self.name, error)
            time.sleep(1)
            return None
        if result is None:
            return None
        job, queue = result
        if queueing.logical_queue(queue.name) in queueing.paused_queues(self.connection):
            # Paused while we waited: put it back where it was.
            queue.push_job_id(job.id, at_front=True)
            return None
        job.redis_server_version = self.get_redis_server_version()
        logger.info("worker %s: %s: %s (%s)", self.name, queue.name, job.description, job.id)
        return result

    def get_heartbeat_ttl(self, job: RQJob, working_time: float = 0.0) -> int:
        """A running job's registry entry outlives its worker by this much: how fast death shows."""
        remaining = (job.timeout or settings.CONVEYOR_WORKER_TTL) - working_time
        interval = min(remaining, self.job_monitoring_interval)
        return max(1, math.ceil(interval)) + settings.CONVEYOR_HEARTBEAT_GRACE

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        grace = settings.CONVEYOR_SHUTDOWN_GRACE
        if self.get_state() == WorkerStatus.BUSY and self._grace_timer is None:
            logger.info("worker %s: finishing the current job, at most %s s", self.name, grace)
            self._grace_timer = threading.Timer(grace, self.cut_off_current_job)
            self._grace_timer.daemon = True
            self._grace_timer.start()

    def cut_off_current_job(self) -> None:
        """The grace period is over: stop the running job so it is retried elsewhere."""
        raise NotImplementedError

    def handle_job_failure(
        self,
        job: RQJob,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Any = None,
    ) -> None:
        stopped = self._stopped_job_id == job.id
        super().handle_job_failure(
            job,
            queue,
            started_job_registry=started_job_registry,
            exc_string=exc_string,
            execution=execution,
        )
        reason = "stopped on request" if stopped else _first_line(exc_string)
        try:
            runner.settle_interrupted(job.id, reason=reason)
        except Exception:
            # The reconciler settles the row later if the database is unreachable now.
            logger.exception("worker %s: could not settle job %s", self.name, job.id)


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "the attempt ended without an outcome")[:500]


class Worker(ConveyorWorkerMixin, RQWorker):
    """Forks a work horse per job: isolated memory and a hard stop for a canceled job."""

    def fork_work_horse(self, job: RQJob, queue: Queue) -> None:
        # A forked child must not share the parent's database sockets.
        db.connections.close_all()
        super().fork_work_horse(job, queue)

    def cut_off_current_job(self) -> None:
        if self.horse_pid:
            logger.warning("worker %s: grace period over, stopping the job", self.name)
            self.kill_horse()


class FastWorker(ConveyorWorkerMixin, SimpleWorker):
    """Runs jobs in the worker process itself: no fork and no new connections per job."""

    def execute_job(self, job: RQJob, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        # The job runs in this thread, so a second one keeps the heartbeats going meanwhile.
        done = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job, execution, done), daemon=True)
        beat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            beat.join()
        self.set_state(WorkerStatus.IDLE)

    def _beat(self, job: RQJob, execution: Any, done: threading.Event) -> None:
        while not done.wait(self.job_monitoring_interval):
            try:
                self.maintain_heartbeats(job, execution)
            except redis.exceptions.RedisError as error:
                logger.warning("worker %s: heartbeat failed: %s", self.name, error)

    def cut_off_current_job(self) -> None:
        logger.warning("worker %s: grace period over, interrupting the job", self.name)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()
        signal.signal(signal.SIGUSR1, _raise_grace_period_over)


def _raise_grace_period_over(signum: int, frame: Any) -> None:
    raise GracePeriodOver(
        f"the worker shut down and the {settings.CONVEYOR_SHUTDOWN_GRACE} s grace period ended"
    )
