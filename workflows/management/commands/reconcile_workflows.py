"""`reconcile_workflows`: settle steps whose job ended while no one heard (see the service)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from workflows.services.running import reconcile_workflows


class Command(BaseCommand):
    help = "Settle workflow steps whose job ended but whose workflow was not told."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--settle-seconds",
            type=float,
            default=30,
            help="Leave steps whose job ended more recently than this (default 30).",
        )

    def handle(self, *args: Any, settle_seconds: float, **options: Any) -> None:
        if settle_seconds < 0:
            self.stderr.write("--settle-seconds cannot be negative.")
            raise SystemExit(2)
        settled = reconcile_workflows(settle_seconds=settle_seconds)
        self.stdout.write(f"Settled {settled} step(s).")
