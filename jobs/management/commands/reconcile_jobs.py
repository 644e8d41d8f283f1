from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs.runtime.reconciler import reconcile


class Command(BaseCommand):
    help = "Hand pending jobs to Redis, re-push lost ones and settle jobs whose worker died."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=1000, help="Rows per step (default 1000).")
        parser.add_argument(
            "--until-done", action="store_true", help="Repeat passes until one finds nothing."
        )

    def handle(self, *args: Any, limit: int, until_done: bool, **options: Any) -> None:
        while True:
            outcome = reconcile(limit=limit)
            self.stdout.write(
                f"pushed {outcome.pushed} pending, re-pushed {outcome.repushed} lost, "
                f"rescued {sum(outcome.rescued.values())} {outcome.rescued or ''}, "
                f"released {outcome.released} deferred, moved {outcome.overdue} overdue"
            )
            if not until_done or outcome.total == 0:
                return
