"""`manage.py rqworker`: django-rq's command, with `--concurrency` for the concurrent worker,
`--with-schedules` for Conveyor's schedule loop in the worker, and the worker run under a
supervisor (`jobs.runtime.supervisor`)."""

import argparse
import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils.module_loading import import_string

from jobs.runtime.scheduler import run_forever
from jobs.runtime.supervisor import Supervisor
from jobs.transport.concurrent import ConcurrentWorkerBase, with_concurrency
from jobs.transport.workers import RQWorkerCommand, preload_modules


def _concurrency(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {value!r}")
    return number


class Command(RQWorkerCommand):
    help = (
        "Run a worker for the given queues (CONVEYOR_QUEUES names). It runs in a child process "
        "that is restarted when it dies, its running jobs settled (--no-supervise: in this one)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--concurrency",
            type=_concurrency,
            default=None,
            help="How many jobs this process runs at once (default: the largest `concurrency` "
            "of its queues in CONVEYOR_QUEUES). Only the concurrent worker runs more than one.",
        )
        parser.add_argument(
            "--with-schedules",
            action="store_true",
            help="Also run Conveyor's schedule loop (what `run_scheduler` runs) in a thread of "
            "the worker; safe beside other loops and `run_scheduler` processes.",
        )
        parser.add_argument(
            "--no-supervise",
            action="store_true",
            help="Run the worker in this process, without restarts (CONVEYOR_SUPERVISE=false).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        concurrency = options.pop("concurrency")
        if concurrency is not None:
            options["worker_class"] = self._worker_class(options["worker_class"], concurrency)
        schedules = options.pop("with_schedules")
        bare = options.pop("no_supervise") or not settings.CONVEYOR_SUPERVISE
        if bare or options["burst"]:
            with _schedule_loop(schedules and not options["burst"]):
                super().handle(*args, **options)
            return

        preload_modules(args)  # once, here: every restarted worker is forked with them loaded

        def work(name: str) -> None:
            # In the worker's own process, so that a restart brings the loop back with it.
            with _schedule_loop(schedules):
                super(Command, self).handle(*args, **{**options, "name": options["name"] or name})

        sys.exit(Supervisor(work).run())

    def _worker_class(self, name: str | None, concurrency: int) -> Any:
        worker_class = import_string(name or settings.RQ["WORKER_CLASS"])
        if issubclass(worker_class, ConcurrentWorkerBase):
            return with_concurrency(worker_class, concurrency)
        if concurrency == 1:
            return worker_class
        raise CommandError(
            f"{worker_class.__name__} runs one job at a time: --concurrency {concurrency} needs "
            "jobs.runtime.worker.ConcurrentWorker (or start that many processes)"
        )


@contextlib.contextmanager
def _schedule_loop(wanted: bool) -> Iterator[None]:
    """Conveyor's schedule loop in a daemon thread for the duration of the block."""
    if not wanted:
        yield
        return
    stop = threading.Event()
    loop = threading.Thread(target=run_forever, args=(stop,), name="schedules", daemon=True)
    loop.start()
    try:
        yield
    finally:
        stop.set()
        loop.join(timeout=10)
