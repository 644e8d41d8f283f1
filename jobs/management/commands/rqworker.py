"""`manage.py rqworker`: django-rq's command, with the worker run under a supervisor."""

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from jobs.runtime.supervisor import Supervisor
from jobs.transport.workers import RQWorkerCommand, preload_modules


class Command(RQWorkerCommand):
    help = (
        "Run a worker on the given queues. It runs in a child process that is restarted when it "
        "dies, its running jobs settled (--no-supervise runs it in this process)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--no-supervise",
            action="store_true",
            help="Run the worker in this process, without restarts (CONVEYOR_SUPERVISE=false).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        bare = options.pop("no_supervise") or not settings.CONVEYOR_SUPERVISE
        if bare or options["burst"]:
            super().handle(*args, **options)
            return

        preload_modules(args)  # once, here: every restarted worker is forked with them loaded

        def work(name: str) -> None:
            super(Command, self).handle(*args, **{**options, "name": options["name"] or name})

        sys.exit(Supervisor(work).run())
