"""`manage.py rqworker`: django-rq's command, with `--concurrency` for the concurrent worker."""

import argparse
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils.module_loading import import_string

from jobs.transport.concurrent import ConcurrentWorkerBase, with_concurrency
from jobs.transport.workers import RQWorkerCommand


def _concurrency(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {value!r}")
    return number


class Command(RQWorkerCommand):
    help = "Run a worker for the given queues (CONVEYOR_QUEUES names)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--concurrency",
            type=_concurrency,
            default=None,
            help="How many jobs this process runs at once (default: the largest `concurrency` "
            "of its queues in CONVEYOR_QUEUES). Only the concurrent worker runs more than one.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        concurrency = options.pop("concurrency")
        if concurrency is not None:
            options["worker_class"] = self._worker_class(options["worker_class"], concurrency)
        super().handle(*args, **options)

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
