import signal
import threading
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.runtime.scheduler import MAX_SLEEP, run_forever
from jobs.services.schedules import ensure_system_schedules, run_due_schedules


class Command(BaseCommand):
    help = (
        "Enqueue due schedules (cron, interval, one-off) until SIGTERM or Ctrl-C. "
        "Several schedulers may run at once: each run is enqueued exactly once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval",
            type=float,
            default=MAX_SLEEP,
            help=f"Longest sleep between ticks, in seconds (default {MAX_SLEEP:g}).",
        )
        parser.add_argument("--once", action="store_true", help="Run one tick, then exit.")

    def handle(self, *args: Any, interval: float, once: bool, **options: Any) -> None:
        if interval <= 0:
            raise CommandError("--interval must be a positive number of seconds.")
        if once:
            ensure_system_schedules()
            self.stdout.write(f"enqueued {run_due_schedules()} job(s)")
            return
        stop = threading.Event()

        def request_stop(signum: int, frame: FrameType | None) -> None:
            self.stdout.write(f"{signal.Signals(signum).name}: stopping after this tick")
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        run_forever(stop, max_sleep=interval)
