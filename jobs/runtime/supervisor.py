"""Supervision: `manage.py rqworker` runs the real worker in a child process and watches it.

The supervisor forks the worker, passes it TERM, INT and QUIT, and waits. When the worker
ends on its own (a burst, `--max-jobs`, a requested shutdown), so does the supervisor, with its
exit code. When it dies — killed, crashed, or stopped by the supervisor because it stopped
answering (a job holding the interpreter past its timeout and grace) — the supervisor:

1. stops whatever the worker left behind (a forked work horse, reparented to the supervisor),
2. settles the jobs that worker was running, saying how it died ("its worker process died
   (signal 9 (SIGKILL)) while running it"): retried elsewhere, or failed on their last attempt,
3. forgets the dead worker in Redis, and
4. starts a new worker, after 1, 2, 4… up to 60 s while it keeps dying young.

Settling names each job's lease, so a rescue the reconciler made meanwhile is never repeated.
Linux-only parts (the subreaper) are skipped elsewhere.
"""

import contextlib
import ctypes
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from django.db import connections

from jobs import liveness
from jobs.models import Job, JobLog
from jobs.runtime import runner
from jobs.transport import queueing

logger = logging.getLogger(__name__)

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 60.0
# A worker that lived this long is not dying young: the next restart is immediate again.
HEALTHY_RUN_SECONDS = 60.0
POLL_SECONDS = 0.2
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Death:
    """How a worker process ended, from its wait status."""

    status: int
    # Killed by the supervisor because it stopped answering, not by something else.
    silent: bool = False

    @property
    def clean(self) -> bool:
        return os.WIFEXITED(self.status) and os.WEXITSTATUS(self.status) == 0

    @property
    def exit_code(self) -> int:
        if os.WIFSIGNALED(self.status):
            return 128 + os.WTERMSIG(self.status)
        return os.WEXITSTATUS(self.status)

    def describe(self) -> str:
        if os.WIFSIGNALED(self.status):
            number = os.WTERMSIG(self.status)
            return f"signal {number} ({signal.Signals(number).name})"
        return f"exit code {os.WEXITSTATUS(self.status)}"

    def reason(self) -> str:
        """Why its jobs ended, for their log and error message."""
        if self.silent:
            return (
                f"its worker process stopped answering (a job held it past its timeout) and was "
                f"stopped ({self.describe()})"
            )
        return f"its worker process died ({self.describe()}) while running it"


class Supervisor:
    """Runs `work(worker_name)` in a child process again and again until it ends on its own."""

    def __init__(self, work: Callable[[str], None], *, silence_limit: float | None = None) -> None:
        self.work = work
        self.silence_limit = silence_limit or runner.lease_seconds()
        self.child = 0
        self.stopping = False

    def run(self) -> int:
        """Supervise until the worker ends on its own or a stop signal ends it; its exit code."""
        _become_subreaper()
        for number in FORWARDED:
            signal.signal(number, self._forward)
        backoff = FIRST_BACKOFF
        while True:
            name = uuid.uuid4().hex
            started = time.monotonic()
            death = self._run_once(name)
            if death.clean or self.stopping:
                return death.exit_code
            logger.error("worker %s died (%s)", name, death.describe())
            if not self._settle(name, death):
                return death.exit_code
            lived = time.monotonic() - started
            backoff = FIRST_BACKOFF if lived >= HEALTHY_RUN_SECONDS else backoff
            logger.info("starting a new worker in %s s", backoff)
            if self._sleep(backoff):
                return death.exit_code
            backoff = min(MAX_BACKOFF, backoff * 2)

    def _run_once(self, name: str) -> Death:
        liveness.share()
        connections.close_all()  # the child must not share the parent's database sockets
        pid = os.fork()
        if pid == 0:
            _run_child(self.work, name)
        self.child = pid
        try:
            return self._wait()
        finally:
            self.child = 0

    def _wait(self) -> Death:
        killed_for_silence = False
        while True:
            pid, status = os.waitpid(self.child, os.WNOHANG)
            if pid == self.child:
                return Death(status, silent=killed_for_silence)
            silent = liveness.silent_for()
            if not killed_for_silence and silent > self.silence_limit:
                logger.error(
                    "worker pid %s has not answered for %.0f s (a job holding the interpreter "
                    "past its timeout?): stopping it",
                    self.child,
                    silent,
                )
                os.kill(self.child, signal.SIGKILL)
                killed_for_silence = True
            time.sleep(POLL_SECONDS)

    def _settle(self, name: str, death: Death) -> bool:
        """Settle the dead worker's jobs, trying again while PostgreSQL or Redis is unreachable
        (a new worker could do nothing meanwhile, and must not start under a name still taken);
        False when a stop signal came first."""
        pause = FIRST_BACKOFF
        while True:
            try:
                settle_dead_worker(name, death)
                return True
            except Exception as error:
                logger.warning(
                    "could not settle dead worker %s yet (%s); again in %s s", name, error, pause
                )
            if self._sleep(pause):
                return False
            pause = min(MAX_BACKOFF, pause * 2)

    def _forward(self, number: int, frame: FrameType | None) -> None:
        self.stopping = True
        if self.child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, number)

    def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early for a stop signal; True when one came."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping:
            time.sleep(min(POLL_SECONDS, deadline - time.monotonic()))
        return self.stopping


def _run_child(work: Callable[[str], None], name: str) -> None:
    """The worker process: default signal handling, the work, then exit (never return)."""
    code = 1
    try:
        for number in FORWARDED:
            signal.signal(number, signal.SIG_DFL)
        work(name)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        logger.exception("worker %s crashed", name)
    finally:
        logging.shutdown()
        os._exit(code)


def settle_dead_worker(name: str, death: Death) -> dict[str, int]:
    """Stop what the dead worker left running, settle its started jobs, forget it in Redis."""
    _stop_orphans()
    reason = death.reason()
    outcome: dict[str, int] = {}
    try:
        rows = list(Job.objects.filter(status=Job.Status.STARTED, worker_name=name))
        for job in rows:
            status = runner.settle_interrupted(
                job.rq_id, reason=reason, event=JobLog.Event.STOPPED, lease=job.lease
            )
            if status:
                outcome[status] = outcome.get(status, 0) + 1
                logger.warning("job=%s tenant=%s %s: %s", job.pk, job.tenant_id, status, reason)
        queueing.forget_worker(name)
    finally:
        connections.close_all()  # a dropped connection is not reused; none crosses the fork
    return outcome


def _become_subreaper() -> None:
    """Have a dead worker's orphaned work horse reparented here, so it can be stopped."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _stop_orphans() -> None:
    """Kill and reap every child left (a work horse whose worker died): it must not run on."""
    for pid in _children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _children() -> list[int]:
    me = os.getpid()
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name may hold spaces and parentheses: the fields follow the last ')'.
            fields = entry.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == me:
                found.append(int(entry.parent.name))
    return found
