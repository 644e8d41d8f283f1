"""manage.py backfill_rollups --from 2026-01-01 --to 2026-03-31 [--tenant acme]"""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports.rollups import roll_up_hours
from tenants.management.lookups import get_tenant


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise CommandError(f"{text!r} is not a date like 2026-01-31.") from error


class Command(BaseCommand):
    help = "Roll up jobs and messages for past days (UTC, both days included); re-running is safe."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", required=True, help="First day, YYYY-MM-DD.")
        parser.add_argument("--to", dest="end", required=True, help="Last day, YYYY-MM-DD.")
        parser.add_argument("--tenant", help="Only this tenant (slug).")

    def handle(self, *args: Any, start: str, end: str, tenant: str | None, **options: Any) -> None:
        first, last = _day(start), _day(end)
        if last < first:
            raise CommandError("--to is before --from.")
        chosen = get_tenant(tenant) if tenant else None
        since = datetime.combine(first, time.min, tzinfo=UTC)
        until = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
        written = roll_up_hours(since, until, tenant=chosen)
        self.stdout.write(
            f"Rolled up {written['hours']} hours: {written['job_rows']} job rows, "
            f"{written['message_rows']} message rows."
        )
