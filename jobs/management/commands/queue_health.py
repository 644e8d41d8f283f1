import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs.selectors.queues import health_report


class Command(BaseCommand):
    help = "Print the health report; exit 1 when degraded, 2 on error."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = health_report()
        if options["json"]:
            self.stdout.write(json.dumps(report, default=str, indent=2))
        else:
            self.stdout.write(f"{report['status'].upper()}")
            for component in report["components"]:
                self.stdout.write(
                    f"  {component['status']:<9} {component['name']:<22} {component['reason']}"
                )
        if report["status"] != "healthy":
            raise SystemExit(1 if report["status"] == "degraded" else 2)
