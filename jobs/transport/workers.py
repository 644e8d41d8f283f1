"""The RQ side of Conveyor's workers: priorities, paused queues, graceful shutdown, bookkeeping.

`ForkingWorkerBase` forks a work horse per job (isolation and a hard stop on cancel);
`InProcessWorkerBase` runs jobs in its own process, kept alive across jobs (no fork, no
reconnect per job). Both listen to each queue's priority sub-queues in order and skip paused
queues. What runs a job and settles an interrupted one is not theirs: `jobs.runtime.worker`
binds the runner to them (`run_job`, `settle_interrupted`).
"""

import contextlib
import gc
import importlib
import logging
import math
import signal
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import redis.exceptions
from django import db
from django.conf import settings
from django_rq.management.commands.rqworker import Command as RQWorkerCommand
from rq import Queue, Retry, SimpleWorker
from rq import Worker as RQWorker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import NoSuchJobError, StopRequested
from rq.executions import Execution
from rq.job import Job as RQJob
from rq.timeouts import BaseDeathPenalty, JobTimeoutException, UnixSignalDeathPenalty
from rq.utils import as_text
from rq.utils import now as utcnow
from rq.worker import DequeueStrategy, WorkerStatus

from jobs import host_figures, liveness
from jobs.errors import JobTimedOut
from jobs.transport import bookkeeping, fair, limits, queueing

logger = logging.getLogger(__name__)

__all__ = ["RQWorkerCommand"]  # django-rq's `rqworker`, which Conveyor's command extends

POLL_SECONDS = 5
# The forking worker wakes on enqueues; RQ's scheduler moving a due job does not wake it.
WAKE_POLL_SECONDS = 1.0


class GracePeriodOver(Exception):
    """Raised in a job that outlived the shutdown grace period; the job is retried."""


class DeathPenalty(UnixSignalDeathPenalty):
    """RQ's timeout alarm, raising `JobTimedOut` (a BaseException) in the job instead of RQ's
    JobTimeoutException, which a job body's `except Exception` would swallow."""

    def __init__(self, timeout: int, exception: type[BaseException] = JobTimedOut, **kwargs: Any):
        if exception is JobTimeoutException:
            exception = JobTimedOut
        super().__init__(timeout, exception, **kwargs)


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


def preload_modules(queues: Sequence[str] = ()) -> None:
    """Import heavy modules once per worker process, not in every job.

    CONVEYOR_PRELOAD names them for every worker; a queue's `preload` for the workers that
    listen to it (the reports queue preloads WeasyPrint, which takes over a second to import).
    Then, once per process, everything loaded so far is frozen out of the garbage collector's
    sight: it lives as long as the process, a full collection need not walk it again and again,
    and a forked work horse does not copy the pages it sits in by walking it (the `gc.freeze`
    recipe).
    """
    names = list(getattr(settings, "CONVEYOR_PRELOAD", []))
    for queue in dict.fromkeys(queueing.logical_queue(name) for name in queues):
        names += settings.CONVEYOR_QUEUES.get(queue, {}).get("preload", [])
    for name in dict.fromkeys(names):
        try:
            importlib.import_module(name)
        except ImportError as error:
            logger.warning("could not preload %s: %s", name, error)
    if not gc.get_freeze_count():
        gc.collect()
        gc.freeze()


if TYPE_CHECKING:
    from rq.worker import BaseWorker as _WorkerBase
else:
    _WorkerBase = object


class ConveyorWorkerMixin(_WorkerBase):
    """What both worker classes add to RQ's."""

    death_penalty_class: type[BaseDeathPenalty] = DeathPenalty

    def __init__(self, queues: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("worker_ttl", settings.CONVEYOR_WORKER_TTL)
        kwargs.setdefault("job_monitoring_interval", settings.CONVEYOR_HEARTBEAT_SECONDS)
        super().__init__(queues, *args, **kwargs)
        self.queues = listening_order(self.queues)
        self._ordered_queues = self.queues[:]
        self._grace_timer: threading.Timer | None = None
        self._figures_at = 0.0
        self.outage = _Outage(self.name)
        self._overdue_at: float | None = None  # set by the in-process worker while a job runs
        preload_modules([queue.name for queue in self.queues])

    def _heartbeat_now_and_then(self) -> None:
        # RQ beats after every job already; between jobs once a second is plenty.
        last = self.last_heartbeat
        if last is None or (utcnow() - last).total_seconds() >= 1:
            with self.outage.ridden("heartbeat"):
                self.heartbeat()
            self.report_figures()
        self.keep_scheduler_alive()

    def report_figures(self) -> None:
        """Store this process's memory and CPU and its host's load and free disk in the
        worker's Redis hash, every CONVEYOR_FIGURES_SECONDS at most (psutil reads /proc)."""
        if time.monotonic() - self._figures_at < settings.CONVEYOR_FIGURES_SECONDS:
            return
        self._figures_at = time.monotonic()
        try:
            queueing.store_worker_figures(self.key, host_figures.measure(), self.connection)
        except (OSError, redis.exceptions.RedisError) as error:
            logger.warning("worker %s: figures not stored: %s", self.name, error)

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        if liveness.shared():
            threading.Thread(target=self._show_liveness, name="liveness", daemon=True).start()

    def _show_liveness(self) -> None:
        """Tell the supervisor this process is responsive, twice a second, from a thread of its
        own so that no wait on Redis or PostgreSQL silences it: only a job holding the
        interpreter, or one past its timeout and grace, does."""
        while True:
            if not self.overdue():
                liveness.beat()
            time.sleep(0.5)

    def overdue(self) -> bool:
        """Whether the job running here ignored its timeout and grace (in-process only)."""
        overdue_at = self._overdue_at
        return overdue_at is not None and time.monotonic() > overdue_at

    def set_state(self, *args: Any, **kwargs: Any) -> None:
        with self.outage.ridden("state"):
            super().set_state(*args, **kwargs)

    def heartbeat(self, *args: Any, **kwargs: Any) -> None:
        with self.outage.ridden("heartbeat"):
            super().heartbeat(*args, **kwargs)

    def check_for_suspension(self, burst: bool) -> None:
        with self.outage.ridden("suspension check"):
            super().check_for_suspension(burst)

    def run_maintenance_tasks(self) -> None:
        with self.outage.ridden("maintenance"):
            super().run_maintenance_tasks()

    def _start_scheduler(self, *args: Any, **kwargs: Any) -> None:
        super()._start_scheduler(*args, **kwargs)
        if self.scheduler is not None:
            # Names the scheduler's locks, so a supervisor can release them if this worker dies.
            self.connection.hset(self.key, queueing.SCHEDULER_FIELD, self.scheduler.name)

    def keep_scheduler_alive(self) -> None:
        """Start RQ's scheduler process again at once if it died (RQ would wait 10 minutes)."""
        scheduler = self.scheduler
        if scheduler is None or (scheduler._process and scheduler._process.is_alive()):
            return
        with self.outage.ridden("scheduler restart"):
            scheduler.acquire_locks(auto_start=True)

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
            try:
                wait = None if timeout is None else min(timeout, POLL_SECONDS)
                result = self._dequeue_once(wait)
            except REDIS_DOWN as error:
                self.outage.wait(error)
                result = None
            if result is not None:
                return result
            idle = time.monotonic() - idle_since
            if timeout is None or (max_idle_time is not None and idle >= max_idle_time):
                return None

    def _dequeue_once(self, timeout: int | None) -> tuple[RQJob, Queue] | None:
        """The next job by the tenants' rotation (`jobs.transport.fair`); when none may run,
        wait for a wake-up (an enqueue, a resume, a freed slot) or the first hold's end."""
        try:
            picked = fair.pick(self.connection, self.queues)
            if isinstance(picked, tuple):
                position, job_id = picked
                queue = self.queues[position]
                try:
                    job = self.job_class.fetch(job_id, self.connection, self.serializer)
                except NoSuchJobError:
                    return None
                self.outage.over()
                job.redis_server_version = self.get_redis_server_version()
                logger.debug("worker %s: %s: %s", self.name, queue.name, job.id)
                return job, queue
            if timeout:
                wait = picked if isinstance(picked, float) else WAKE_POLL_SECONDS
                wait = min(wait, WAKE_POLL_SECONDS)
                keys = fair.wake_keys([queueing.logical_queue(q.name) for q in self.queues])
                self.connection.blpop(keys, max(wait, 0.01))
        except REDIS_DOWN as error:
            self.outage.wait(error)
        return None

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

    def run_job(self, *args: Any, **kwargs: Any) -> Any:
        """Run one delivery of a Conveyor job (the runner's `execute`)."""
        raise NotImplementedError

    def settle_interrupted(self, job_id: str, *, reason: str, worker: str) -> None:
        """Record the outcome of `worker`'s attempt, which ended without recording one."""
        raise NotImplementedError

    def renew_lease(self, job_id: str, *, worker: str) -> None:
        """Extend the lease in PostgreSQL of the attempt `worker` runs."""
        raise NotImplementedError

    def renew_lease_quietly(self, job_id: str) -> None:
        try:
            self.renew_lease(job_id, worker=self.name)
        except Exception as error:
            # Not renewed, the lease lapses and the job is rescued: logged, never fatal here.
            logger.warning(
                "worker %s: could not renew the lease of %s: %s", self.name, job_id, error
            )

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
            self.settle_interrupted(job.id, reason=reason, worker=self.name)
        except Exception:
            # The reconciler settles the row later if the database is unreachable now.
            logger.exception("worker %s: could not settle job %s", self.name, job.id)


REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "the attempt ended without an outcome")[:500]


class ForkingWorkerBase(ConveyorWorkerMixin, RQWorker):
    """Forks a work horse per job: isolated memory and a hard stop for a canceled job."""

    def perform_job(self, job: RQJob, queue: Queue, execution: Execution) -> bool:
        if job.func_name in queueing.LEGACY_EXECUTE:
            job._func_name = queueing.EXECUTE  # enqueued before the runner moved
        return super().perform_job(job, queue, execution)

    def _finalize_success(
        self, job: RQJob, queue: Queue, execution: Execution, return_value: Any
    ) -> None:
        if isinstance(return_value, limits.Hold):
            bookkeeping.set_aside(
                self.connection,
                job_id=job.id,
                execution_id=execution.id,
                list_key=queue.key,
                executions_key=self.executions_key,
                hold=return_value,
            )
            return
        super()._finalize_success(job, queue, execution, return_value)

    def fork_work_horse(self, job: RQJob, queue: Queue) -> None:
        # A forked child must not share the parent's database sockets.
        db.connections.close_all()
        super().fork_work_horse(job, queue)

    def execute_job(self, job: RQJob, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        except REDIS_DOWN as error:
            # The runner recorded the outcome in PostgreSQL, or the lease lapses and the job is
            # rescued; RQ's records of it expire on their own.
            logger.warning("worker %s: job %s left to PostgreSQL: %s", self.name, job.id, error)
            self.outage.wait(error)

    def maintain_heartbeats(self, job: RQJob, execution: Execution) -> None:
        with self.outage.ridden("heartbeat"):
            super().maintain_heartbeats(job, execution)
        self.renew_lease_quietly(job.id)

    def cut_off_current_job(self) -> None:
        if self.horse_pid:
            logger.warning("worker %s: grace period over, stopping the job", self.name)
            self.kill_horse()


class InProcessWorkerBase(ConveyorWorkerMixin, SimpleWorker):
    """Runs jobs in the worker process itself: no fork and no new connections per job.

    Its loop is Conveyor's own: one Lua call finishes the previous job and takes the next
    (`jobs.transport.bookkeeping`), writing the records RQ's tools read; the row is claimed and
    settled in PostgreSQL by the runner (`run_job`). A job that must run again (a retry, a limit) or
    that raised goes through RQ's own handlers, as with any RQ worker.
    """

    def work(
        self,
        burst: bool = False,
        logging_level: str | None = None,
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
        max_jobs: int | None = None,
        max_idle_time: int | None = None,
        with_scheduler: bool = False,
        dequeue_strategy: DequeueStrategy = DequeueStrategy.DEFAULT,
    ) -> bool:
        self.bootstrap(logging_level, date_format, log_format)
        self._dequeue_strategy = dequeue_strategy
        if with_scheduler:
            self._start_scheduler(burst, logging_level, date_format, log_format)
        self._install_signal_handlers()
        self._bookkeeper = self._make_bookkeeper()
        self._running: bookkeeping.Taken | None = None
        beat = _Heartbeat(self)
        beat.start()
        queueing.set_worker_name(self.name)
        try:
            completed = self._work_loop(burst=burst, max_jobs=max_jobs, max_idle=max_idle_time)
        finally:
            queueing.set_worker_name("")
            beat.stop()
            self.teardown()
        return completed > 0

    def _make_bookkeeper(self) -> bookkeeping.Bookkeeper:
        self._positions = {queue.key: index for index, queue in enumerate(self.queues)}
        return bookkeeping.Bookkeeper(
            self.connection,
            worker_name=self.name,
            worker_key=self.key,
            executions_key=self.executions_key,
            queues=self.queues,
            logical_names=[queueing.logical_queue(queue.name) for queue in self.queues],
            paused_key=queueing.PAUSED_KEY,
            worker_ttl=self.worker_ttl + 60,
            interval=self.job_monitoring_interval,
            grace=settings.CONVEYOR_HEARTBEAT_GRACE,
        )

    def _work_loop(self, *, burst: bool, max_jobs: int | None, max_idle: int | None) -> int:
        completed = 0
        finished: bookkeeping.Finished | None = None
        idle_since = time.monotonic()
        try:
            while not self._stop_requested:
                try:
                    if self.should_run_maintenance_tasks:
                        self._flush(finished)
                        finished = None
                        self.run_maintenance_tasks()
                    self.keep_scheduler_alive()
                    # Busy while taking: a SIGTERM now lets the job taken run, then stops.
                    self._state = WorkerStatus.BUSY
                    taken = self._bookkeeper.take(finished=finished)
                    self.outage.over()
                except REDIS_DOWN as error:
                    # `finished` is kept: writing it again is harmless, and it must not be lost.
                    self.outage.wait(error)
                    continue
                finished = None
                if isinstance(taken, bookkeeping.Held):
                    # Jobs held by limits are work still to do, even for a burst; jobs of
                    # paused tenants are not, until a resume.
                    if burst and taken.seconds is None:
                        break
                    self._wait_for_tenants(taken.seconds)
                    continue
                if taken is None:
                    if burst:
                        break
                    taken = self._wait()
                    if taken is None or isinstance(taken, bookkeeping.Held):
                        if max_idle is not None and time.monotonic() - idle_since >= max_idle:
                            break
                        continue
                if taken == bookkeeping.SUSPENDED:
                    self._state = WorkerStatus.SUSPENDED
                    if burst:
                        break
                    time.sleep(1)
                    continue
                assert isinstance(taken, bookkeeping.Taken)
                try:
                    finished = self._perform(taken)
                except REDIS_DOWN as error:
                    # The outcome is in PostgreSQL; RQ's records of it expire on their own.
                    self.outage.wait(error)
                completed += 1
                idle_since = time.monotonic()
                if max_jobs is not None and completed >= max_jobs:
                    break
        except StopRequested:
            pass
        except Exception:
            self.log.error("Worker %s: unhandled exception, quitting", self.name, exc_info=True)
        finally:
            with contextlib.suppress(redis.exceptions.RedisError):
                self._flush(finished)
        return completed

    def _flush(self, finished: bookkeeping.Finished | None) -> None:
        if finished is not None:
            self._bookkeeper.finish(finished)

    def _wait(
        self, seconds: float = POLL_SECONDS
    ) -> bookkeeping.Taken | bookkeeping.Held | str | None:
        """Block on the queues that are not paused until a job comes (at most `seconds`)."""
        self._state = WorkerStatus.IDLE
        self.procline("Listening on " + ",".join(self.queue_names()))
        try:
            paused = queueing.paused_queues(self.connection)
            keys = [q.key for q in self.queues if queueing.logical_queue(q.name) not in paused]
            if not keys:
                time.sleep(seconds)
                return None
            popped = self.connection.blpop(keys, seconds)
        except REDIS_DOWN as error:
            self.outage.wait(error)
            return None
        if popped is None:
            return None
        self._state = WorkerStatus.BUSY
        queue_key, job_id = (as_text(part) for part in popped)
        try:
            return self._bookkeeper.take(given=(self._positions[queue_key], job_id))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            # Back at the front; if the start went through after all, the runner's claim lets
            # only one delivery run.
            logger.error(
                "worker %s: Redis unreachable (%s), job %s put back", self.name, error, job_id
            )
            with contextlib.suppress(redis.exceptions.RedisError):
                self.connection.lpush(queue_key, job_id)
            return None

    def _wait_for_tenants(self, seconds: float | None) -> None:
        """Jobs wait, but only of tenants held by their limits (or paused): sleep until the
        first hold ends, or a new job, a freed slot or a resume wakes the queue."""
        self._state = WorkerStatus.IDLE
        keys = fair.wake_keys([queueing.logical_queue(q.name) for q in self.queues])
        try:
            wait = POLL_SECONDS if seconds is None else min(max(seconds, 0.01), POLL_SECONDS)
            self.connection.blpop(keys, wait)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            logger.error("worker %s: Redis unreachable (%s), retrying", self.name, error)
            time.sleep(1)

    def _perform(self, taken: bookkeeping.Taken) -> bookkeeping.Finished | None:
        """Run one job; returns its success records to write with the next take, if any."""
        queue = self.queues[taken.position]
        execution = Execution(taken.execution_id, taken.job_id, self.connection, self.name)
        self.executions[execution.id] = execution
        self._running = taken
        try:
            func_name, _, args, kwargs = self._decode(taken.data)
            if func_name not in (queueing.EXECUTE, *queueing.LEGACY_EXECUTE):
                self._perform_with_rq(taken, queue, execution)
                return None
            timeout = taken.timeout or queue._default_timeout or Queue.DEFAULT_TIMEOUT
            # Past this the job has ignored its timeout: the heartbeat stops, the job is rescued
            # and a supervisor stops this process.
            self._overdue_at = time.monotonic() + timeout + settings.CONVEYOR_HEARTBEAT_GRACE
            try:
                with self.death_penalty_class(timeout, JobTimeoutException, job_id=taken.job_id):
                    outcome = self.run_job(*args, **kwargs)
            except (Exception, JobTimedOut):
                self._fail_with_rq(taken, queue, execution, sys.exc_info())
                return None
            if isinstance(outcome, Retry):
                self._retry_with_rq(taken, queue, execution, outcome)
                return None
            if isinstance(outcome, limits.Hold):
                self._bookkeeper.set_aside(taken, outcome)
                return None
            ttl = taken.result_ttl if taken.result_ttl is not None else self.default_result_ttl
            return self._bookkeeper.finished(taken, result_ttl=ttl)
        finally:
            self._running = None
            self._overdue_at = None
            self.executions.pop(execution.id, None)

    def _decode(self, data: bytes) -> tuple[str, Any, tuple[Any, ...], dict[str, Any]]:
        with contextlib.suppress(zlib.error):  # RQ reads uncompressed data too
            data = zlib.decompress(data)
        func_name, instance, args, kwargs = self.serializer.loads(data)
        return func_name, instance, tuple(args), dict(kwargs)

    def _fetch(self, taken: bookkeeping.Taken) -> RQJob | None:
        try:
            job = self.job_class.fetch(taken.job_id, self.connection, self.serializer)
        except NoSuchJobError:
            self._bookkeeper.drop(taken)
            return None
        job.started_at = taken.started_at
        return job

    def _perform_with_rq(self, taken: bookkeeping.Taken, queue: Queue, execution: Any) -> None:
        """A job some other code put on our queues: RQ runs it its own way."""
        if job := self._fetch(taken):
            self.perform_job(job, queue, execution)

    def _retry_with_rq(
        self, taken: bookkeeping.Taken, queue: Queue, execution: Any, retry: Retry
    ) -> None:
        if job := self._fetch(taken):
            job.ended_at = utcnow()
            self.handle_job_retry(
                job=job,
                queue=queue,
                retry=retry,
                started_job_registry=queue.started_job_registry,
                execution=execution,
            )

    def _fail_with_rq(
        self, taken: bookkeeping.Taken, queue: Queue, execution: Any, exc_info: Any
    ) -> None:
        if job := self._fetch(taken):
            self._finalize_failure(job, queue, execution, exc_info)

    def beat_running_job(self) -> None:
        """Called from the heartbeat thread: keep a long job's records alive."""
        taken = self._running
        if taken is not None:
            # PostgreSQL first: the lease must not lapse because Redis is away.
            self.renew_lease_quietly(taken.job_id)
            self._bookkeeper.beat(taken)

    def cut_off_current_job(self) -> None:
        logger.warning("worker %s: grace period over, interrupting the job", self.name)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()
        signal.signal(signal.SIGUSR1, _raise_grace_period_over)


class _Outage:
    """Riding out a Redis that does not answer: logged once, then retried with backoff."""

    FIRST, LONGEST = 0.5, 5.0

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.down = False
        self.pause = 0.0

    def noted(self, error: Exception) -> None:
        if not self.down:
            logger.error("worker %s: Redis unreachable (%s); waiting for it", self.worker, error)
        self.down = True

    def wait(self, error: Exception) -> None:
        self.noted(error)
        self.pause = min(self.LONGEST, max(self.FIRST, self.pause * 2))
        time.sleep(self.pause)

    def over(self) -> None:
        if self.down:
            logger.warning("worker %s: Redis answers again", self.worker)
        self.down, self.pause = False, 0.0

    @contextlib.contextmanager
    def ridden(self, what: str) -> Iterator[None]:
        """A step that may be skipped while Redis is away (a heartbeat, maintenance)."""
        try:
            yield
        except REDIS_DOWN as error:
            logger.debug("worker %s: %s skipped: %s", self.worker, what, error)
            self.noted(error)


class WorkerThread:
    """A daemon thread beside a worker's jobs: `start`, then `stop` sets `_stopped` and waits
    for `_run` (a loop on `self._stopped.wait(...)`) to end."""

    name = "worker-thread"

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        raise NotImplementedError


class _Heartbeat(WorkerThread):
    """A thread that keeps the running job's heartbeat fresh every job_monitoring_interval."""

    name = "heartbeat"
    worker: InProcessWorkerBase

    def _run(self) -> None:
        interval = self.worker.job_monitoring_interval
        beaten: tuple[str, float] = ("", 0.0)
        while not self._stopped.wait(min(1.0, interval)):
            if self.worker.overdue():
                continue  # the job outlived its timeout and grace: let its records lapse
            taken = self.worker._running
            if taken is None:
                continue
            last = beaten[1] if beaten[0] == taken.execution_id else taken.started
            if time.monotonic() - last < interval:
                continue
            try:
                self.worker.beat_running_job()
                self.worker.report_figures()
                beaten = (taken.execution_id, time.monotonic())
            except redis.exceptions.RedisError as error:
                logger.warning("worker %s: heartbeat failed: %s", self.worker.name, error)


def _raise_grace_period_over(signum: int, frame: Any) -> None:
    raise GracePeriodOver(
        f"the worker shut down and the {settings.CONVEYOR_SHUTDOWN_GRACE} s grace period ended"
    )
