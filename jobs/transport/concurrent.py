"""The RQ side of the concurrent worker: up to N jobs at once in one process, one thread each.

Almost every job waits on the network (a provider, a webhook receiver), so one process can run
many at once: `ConcurrentWorkerBase` keeps `concurrency` job threads ("slots"). The main thread
takes jobs through the same Lua as `InProcessWorkerBase` (`jobs.transport.bookkeeping`), as many
as there are free slots, in one round trip that also writes the records of the jobs that
succeeded meanwhile; a monitor thread refreshes every running job's heartbeat in one round trip
and stops jobs past their timeout. A job is stopped (timeout, forced cancel, end of the shutdown
grace period) by raising an `Interrupted` exception inside its thread, as Dramatiq's time limits
do; Python delivers it at the thread's next bytecode, so code blocked in C (a socket read without
a timeout) stops only when that call returns: give every network call a timeout.
"""

import contextlib
import ctypes
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis.exceptions
from django import db
from django.conf import settings
from django.utils import timezone
from rq import Queue, Retry
from rq.command import parse_payload
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.timeouts import TimerDeathPenalty
from rq.worker import DequeueStrategy, WorkerStatus

from jobs.transport import bookkeeping, limits, queueing
from jobs.transport.workers import POLL_SECONDS, InProcessWorkerBase, WorkerThread

logger = logging.getLogger(__name__)

# Successes that end within this many seconds of each other are recorded in one statement.
COMPLETE_WITHIN = 0.005
COMPLETE_MOST = 500
# How often the monitor looks for jobs past their timeout.
TICK_SECONDS = 0.1
# While jobs run and the queues are empty, the main thread waits this long for a new job, so
# the records of jobs that ended meanwhile are written soon.
BUSY_POLL_SECONDS = 1.0


class Interrupted(BaseException):
    """Raised inside a job's thread to stop it; the attempt is settled like a killed work horse's.

    A BaseException, so that `except Exception` in a job body cannot swallow it. The runner does
    not record it: the worker settles the row (retried, or canceled when that was asked).
    """

    reason = "the job was interrupted"


class TimeLimitExceeded(Interrupted):
    reason = "the job ran past its timeout"


class StoppedOnRequest(Interrupted):
    reason = "stopped on request"


class ShutdownGraceOver(Interrupted):
    reason = "the worker shut down and its grace period ended"


def queue_concurrency(queue_names: list[str]) -> int:
    """How many jobs a worker of these queues runs at once: the largest `concurrency` of theirs."""
    specs = settings.CONVEYOR_QUEUES
    found = [
        int(specs[name].get("concurrency", 1))
        for name in dict.fromkeys(queueing.logical_queue(name) for name in queue_names)
        if name in specs
    ]
    return max(found, default=1)


def with_concurrency[W: ConcurrentWorkerBase](worker_class: type[W], concurrency: int) -> type[W]:
    """`worker_class`, running `concurrency` jobs at once whatever its queues' settings say."""
    attributes = {"chosen_concurrency": concurrency, "__module__": worker_class.__module__}
    return type(worker_class.__name__, (worker_class,), attributes)


def _raise_in(thread_id: int, error: type[BaseException] | None) -> None:
    # A NULL exception clears one set before and not yet raised.
    target = ctypes.py_object(error) if error is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target)


@dataclass
class Slot:
    """One job thread and what it runs now."""

    index: int
    inbox: "queue.SimpleQueue[bookkeeping.Taken | None]" = field(default_factory=queue.SimpleQueue)
    taken: bookkeeping.Taken | None = None
    deadline: float = 0.0
    interrupting: type[Interrupted] | None = None
    thread_id: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, taken: bookkeeping.Taken, timeout: float) -> None:
        with self.lock:
            self.taken, self.deadline, self.interrupting = taken, time.monotonic() + timeout, None

    def interrupt(self, error: type[Interrupted], *, job_id: str | None = None) -> bool:
        """Raise `error` in the thread if it runs a job (`job_id`'s, when given)."""
        with self.lock:
            taken = self.taken
            if taken is None or self.interrupting or (job_id and taken.job_id != job_id):
                return False
            self.interrupting = error
            _raise_in(self.thread_id, error)
            return True

    def end(self) -> None:
        """The job's code returned: nothing may interrupt this thread any more."""
        with self.lock:
            if self.interrupting is not None:
                _raise_in(self.thread_id, None)
            self.taken = None


class ConcurrentWorkerBase(InProcessWorkerBase):
    """Runs up to `concurrency` jobs at once in one process, each in its own thread."""

    # RQ's own code (jobs other code put on our queues, failure callbacks) runs in job threads,
    # where signals cannot reach: its timeouts use a timer thread instead of SIGALRM.
    death_penalty_class = TimerDeathPenalty
    _held: bookkeeping.Held | None = None  # what the last take answered, when all were held

    # Set by `with_concurrency` for `manage.py rqworker --concurrency`.
    chosen_concurrency: int | None = None

    def __init__(self, queues: Any, *args: Any, concurrency: int | None = None, **kwargs: Any):
        super().__init__(queues, *args, **kwargs)
        self.concurrency = (
            concurrency or self.chosen_concurrency or queue_concurrency(self.queue_names())
        )
        self.slots = [Slot(index) for index in range(self.concurrency)]
        self._free: list[Slot] = list(reversed(self.slots))
        self._finished: list[bookkeeping.Finished] = []
        self._changed = threading.Condition()
        self._rq_lock = threading.RLock()  # RQ's handlers change the worker's own state
        # Without a pool each slot keeps its own connection, as FastWorker keeps its one.
        self._pooled = any(
            "pool" in db_settings.get("OPTIONS", {}) for db_settings in settings.DATABASES.values()
        )

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
        self.connection.hset(self.key, "concurrency", self.concurrency)
        if with_scheduler:
            self._start_scheduler(burst, logging_level, date_format, log_format)
        self._install_signal_handlers()
        self._bookkeeper = self._make_bookkeeper()
        self._completer = _Completer(self)
        self._completer.start()
        threads = [self._start_slot(slot) for slot in self.slots]
        monitor = _Monitor(self)
        monitor.start()
        queueing.set_worker_name(self.name)
        try:
            completed = self._loop(burst=burst, max_jobs=max_jobs, max_idle=max_idle_time)
        finally:
            queueing.set_worker_name("")
            for slot in self.slots:
                slot.inbox.put(None)
            for thread in threads:
                thread.join(timeout=10)
            self._completer.stop()
            monitor.stop()
            with contextlib.suppress(redis.exceptions.RedisError):
                self._bookkeeper.finish_many(self._take_finished())
            self.teardown()
        return completed > 0

    def _start_slot(self, slot: Slot) -> threading.Thread:
        thread = threading.Thread(
            target=self._slot_main, args=(slot,), name=f"slot-{slot.index}", daemon=True
        )
        thread.start()
        return thread

    # --- the main thread: take jobs into free slots -----------------------------------------

    def _loop(self, *, burst: bool, max_jobs: int | None, max_idle: int | None) -> int:
        dispatched = 0
        idle_since = time.monotonic()
        try:
            while not self._stop_requested:
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                free = self._wait_for_free_slots()
                if max_jobs is not None:
                    free = min(free, max_jobs - dispatched)
                if free <= 0 or self._stop_requested:
                    if max_jobs is not None and dispatched >= max_jobs:
                        break
                    continue
                taken = self._take(free)
                if taken == bookkeeping.SUSPENDED:
                    self._state = WorkerStatus.SUSPENDED
                    if burst:
                        break
                    time.sleep(1)
                    continue
                if not taken:
                    if burst:
                        if not self.busy_slots():
                            break
                        self._wait_for_change(BUSY_POLL_SECONDS)
                        continue
                    taken = self._wait_in_redis()
                    if not taken:
                        if max_idle is not None and time.monotonic() - idle_since >= max_idle:
                            break
                        continue
                assert isinstance(taken, list)
                for job in taken:
                    self._dispatch(job)
                dispatched += len(taken)
                idle_since = time.monotonic()
        except StopRequested:
            pass
        except Exception:
            self.log.error("Worker %s: unhandled exception, quitting", self.name, exc_info=True)
        self._wait_until_idle()
        return dispatched

    def _take(self, count: int) -> list[bookkeeping.Taken] | str:
        finished = self._take_finished()
        self._state = WorkerStatus.BUSY
        self._held = None
        try:
            taken = self._bookkeeper.take_many(count, finished=finished)
            if isinstance(taken, bookkeeping.Held):
                # Only held or paused tenants' jobs wait: `_wait_in_redis` waits for a wake-up.
                self._held, taken = taken, []
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            self._give_back_finished(finished)  # written again later: harmless, must not be lost
            logger.error("worker %s: Redis unreachable (%s), retrying", self.name, error)
            time.sleep(1)
            return []
        if len(taken) < count and self.busy_slots():
            # The last take found nothing and marked the worker idle; it still runs jobs.
            with contextlib.suppress(redis.exceptions.RedisError):
                self.connection.hset(self.key, "state", WorkerStatus.BUSY)
        return taken

    def _wait_in_redis(self) -> list[bookkeeping.Taken]:
        """Block until a job comes; briefly while jobs run, so their records are written soon."""
        busy = self.busy_slots()
        seconds = BUSY_POLL_SECONDS if busy else POLL_SECONDS
        if busy:
            with contextlib.suppress(redis.exceptions.RedisError):
                self._bookkeeper.finish_many(self._take_finished())
        held = self._held
        if held is not None:
            # Blocking on the lists would pop the held tenants' jobs again and again.
            self._wait_for_tenants(seconds if held.seconds is None else min(held.seconds, seconds))
            taken: bookkeeping.Taken | bookkeeping.Held | str | None = None
        else:
            taken = self._wait(seconds)
        if busy:
            self._state = WorkerStatus.BUSY
        return [taken] if isinstance(taken, bookkeeping.Taken) else []

    def _wait_for_free_slots(self) -> int:
        with self._changed:
            while not self._free and not self._stop_requested:
                self._changed.wait(BUSY_POLL_SECONDS)
            return len(self._free)

    def _wait_for_change(self, seconds: float) -> None:
        with self._changed:
            self._changed.wait(seconds)

    def _wait_until_idle(self) -> None:
        """Take nothing new; let the running jobs end (the grace timer cuts them off)."""
        with self._changed:
            while self.busy_slots():
                self._changed.wait(BUSY_POLL_SECONDS)

    def _dispatch(self, taken: bookkeeping.Taken) -> None:
        with self._changed:
            slot = self._free.pop()
        slot.inbox.put(taken)

    def busy_slots(self) -> int:
        return self.concurrency - len(self._free)

    def running(self) -> list[bookkeeping.Taken]:
        """The jobs the slots run now."""
        return [taken for slot in self.slots if (taken := slot.taken) is not None]

    def _take_finished(self) -> list[bookkeeping.Finished]:
        with self._changed:
            finished, self._finished = self._finished, []
        return finished

    def _give_back_finished(self, finished: list[bookkeeping.Finished]) -> None:
        with self._changed:
            self._finished[:0] = finished

    # --- a slot's thread: run the jobs it is given ------------------------------------------

    def _slot_main(self, slot: Slot) -> None:
        slot.thread_id = threading.get_ident()
        try:
            while (taken := slot.inbox.get()) is not None:
                finished = None
                try:
                    finished = self._perform_in_slot(slot, taken)
                except Interrupted:
                    pass  # arrived as the job's code returned; the row says how it ended
                except Exception:
                    logger.exception(
                        "worker %s: job %s could not be settled", self.name, taken.job_id
                    )
                self._release(slot, finished)
        finally:
            db.connections.close_all()

    def _release(self, slot: Slot, finished: bookkeeping.Finished | None) -> None:
        slot.end()
        with self._changed:
            if finished is not None:
                self._finished.append(finished)
            self._free.append(slot)
            self._changed.notify_all()

    def _perform_in_slot(self, slot: Slot, taken: bookkeeping.Taken) -> bookkeeping.Finished | None:
        queue = self.queues[taken.position]
        execution = Execution(taken.execution_id, taken.job_id, self.connection, self.name)
        self.executions[execution.id] = execution
        slot.start(taken, taken.timeout or queue._default_timeout or Queue.DEFAULT_TIMEOUT)
        try:
            func_name, _, args, kwargs = self._decode(taken.data)
            if func_name not in (queueing.EXECUTE, *queueing.LEGACY_EXECUTE):
                slot.end()  # RQ's own timeout applies to RQ's own jobs
                with self._rq_lock:
                    self._perform_with_rq(taken, queue, execution)
                return None
            succeeded: list[tuple[Any, Any, datetime]] = []

            def record_success(job: Any, result: Any) -> None:
                succeeded.append((job, result, timezone.now()))

            kwargs = {**kwargs, "record_success": record_success}
            outcome, failure = self._run_interruptibly(slot, args, kwargs)
            if failure is not None:
                self._after_failure(taken, queue, execution, failure)
                return None
            if isinstance(outcome, Retry):
                with self._rq_lock:
                    self._retry_with_rq(taken, queue, execution, outcome)
                return None
            if isinstance(outcome, limits.Hold):
                self._bookkeeper.set_aside(taken, outcome)
                return None
            ttl = taken.result_ttl if taken.result_ttl is not None else self.default_result_ttl
            finished = self._bookkeeper.finished(taken, result_ttl=ttl)
            if not succeeded:
                return finished
            self._completer.add(succeeded[0], finished)  # its Redis records follow its row
            return None
        finally:
            self.executions.pop(execution.id, None)
            if self._pooled:
                db.connections.close_all()  # back to the pool for another thread

    def _run_interruptibly(
        self, slot: Slot, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, Any]:
        """Run the job; (outcome, None), or (None, exc_info) when it raised or was stopped."""
        try:
            try:
                return self.run_job(*args, **kwargs), None
            finally:
                slot.end()
        except Interrupted as stop:
            # Whatever the job held open (a transaction, a half-read reply) goes with it.
            db.connections.close_all()
            error = type(stop)(stop.reason)
            return None, (type(stop), error, stop.__traceback__)
        except Exception:
            return None, sys.exc_info()

    def _after_failure(
        self, taken: bookkeeping.Taken, queue: Queue, execution: Execution, failure: Any
    ) -> None:
        with self._rq_lock:
            if failure[0] is StoppedOnRequest:
                self._stopped_job_id = taken.job_id
            try:
                self._fail_with_rq(taken, queue, execution, failure)
            finally:
                self._stopped_job_id = None

    def record_successes(self, successes: list[tuple[Any, Any, datetime]]) -> None:
        """Record in PostgreSQL the jobs that succeeded (job, result, end), in one statement."""
        raise NotImplementedError

    def _finished_elsewhere(self, finished: list[bookkeeping.Finished]) -> None:
        with self._changed:
            self._finished += finished
            self._changed.notify_all()

    # --- stopping jobs ----------------------------------------------------------------------

    def stop_job(self, job_id: str) -> bool:
        """A forced cancel: stop the job in whichever slot runs it."""
        return any(slot.interrupt(StoppedOnRequest, job_id=job_id) for slot in self.slots)

    def stop_overdue_jobs(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            taken = slot.taken
            if taken is not None and now > slot.deadline and slot.interrupt(TimeLimitExceeded):
                logger.warning("worker %s: job %s ran past its timeout", self.name, taken.job_id)

    def cut_off_current_job(self) -> None:
        stopped = sum(slot.interrupt(ShutdownGraceOver) for slot in self.slots)
        if stopped:
            logger.warning("worker %s: grace period over, stopping %s job(s)", self.name, stopped)

    def handle_payload(self, message: dict[str, Any]) -> None:
        payload = parse_payload(message)
        if payload.get("command") == "stop-job":
            if not self.stop_job(str(payload.get("job_id", ""))):
                logger.info("worker %s: not running %s, stop ignored", self.name, payload)
            return
        super().handle_payload(message)

    def beat_running_jobs(self) -> None:
        """Called from the monitor: one round trip for every running job's heartbeat."""
        running = self.running()
        for taken in running:  # PostgreSQL first: a lease must not lapse because Redis is away
            self.renew_lease_quietly(taken.job_id)
        self._bookkeeper.beat_many(running)

    def handle_warm_shutdown_request(self) -> None:
        if self.busy_slots():
            self._state = WorkerStatus.BUSY
        super().handle_warm_shutdown_request()

    def _install_signal_handlers(self) -> None:
        # The grace period ends in the job threads (cut_off_current_job), not by a signal.
        super(InProcessWorkerBase, self)._install_signal_handlers()


class _Completer:
    """Records the successes that came within a few milliseconds of each other in one statement
    (River's batch completer), then hands their Redis records to the main thread.

    A slot is free again as soon as its job's code returns. A crash before the statement leaves
    those rows `started`: the reconciler settles them (the jobs run again; none is lost).
    """

    def __init__(self, worker: ConcurrentWorkerBase) -> None:
        self.worker = worker
        self._waiting: list[tuple[tuple[Any, Any, datetime], bookkeeping.Finished]] = []
        self._changed = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="completer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, success: tuple[Any, Any, datetime], finished: bookkeeping.Finished) -> None:
        with self._changed:
            self._waiting.append((success, finished))
            self._changed.notify()

    def stop(self) -> None:
        """Record what is waiting, then end."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
        self._thread.join(timeout=120)

    def _run(self) -> None:
        try:
            while batch := self._next_batch():
                self._record(batch)
        finally:
            db.connections.close_all()

    def _next_batch(self) -> list[tuple[tuple[Any, Any, datetime], bookkeeping.Finished]]:
        with self._changed:
            while not self._waiting and not self._stopping:
                self._changed.wait()
            if not self._stopping:
                self._changed.wait(COMPLETE_WITHIN)  # let the jobs ending together join
            batch, self._waiting = self._waiting[:COMPLETE_MOST], self._waiting[COMPLETE_MOST:]
            return batch

    def _record(self, batch: list[tuple[tuple[Any, Any, datetime], bookkeeping.Finished]]) -> None:
        try:
            self.worker.record_successes([success for success, _ in batch])
        except Exception:
            # Left `started`; their Redis records expire and the reconciler settles them.
            logger.exception(
                "worker %s: could not record %s successes", self.worker.name, len(batch)
            )
            return
        finally:
            if self.worker._pooled:
                db.connections.close_all()
        self.worker._finished_elsewhere([finished for _, finished in batch])


class _Monitor(WorkerThread):
    """A thread that beats for every running job at once and stops those past their timeout."""

    name = "monitor"
    worker: ConcurrentWorkerBase

    def _run(self) -> None:
        interval = self.worker.job_monitoring_interval
        beaten = time.monotonic()
        while not self._stopped.wait(TICK_SECONDS):
            self.worker.stop_overdue_jobs()
            if time.monotonic() - beaten < interval:
                continue
            beaten = time.monotonic()
            try:
                self.worker.beat_running_jobs()
            except redis.exceptions.RedisError as error:
                logger.warning("worker %s: heartbeat failed: %s", self.worker.name, error)
