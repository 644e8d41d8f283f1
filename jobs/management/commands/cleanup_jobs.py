import sys
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.exceptions import DomainError
from jobs.models import Job
from jobs.services.cleanup import clean_up_jobs
from tenants.management.lookups import get_tenant

FILES_LISTED = 20
BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Delete finished jobs and their logs past retention in short batches, then old RQ "
        "records and stored files no row refers to."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=int, metavar="DAYS", help="Override retention (days)."
        )
        parser.add_argument("--tenant", help="Only this tenant (slug).")
        parser.add_argument(
            "--status", action="append", choices=Job.FINISHED, help="Only these (repeatable)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help=f"Jobs per transaction (default {settings.CONVEYOR_CLEANUP_BATCH_SIZE}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = get_tenant(options["tenant"]) if options["tenant"] else None
        if options["older_than"] is not None and options["older_than"] < 0:
            raise CommandError("--older-than takes a number of days of 0 or more.")
        if options["batch_size"] is not None and options["batch_size"] < 1:
            raise CommandError("--batch-size takes a number of jobs of 1 or more.")
        older_than = (
            None if options["older_than"] is None else timedelta(days=options["older_than"])
        )
        self._shown = -1
        try:
            outcome = clean_up_jobs(
                older_than=older_than,
                tenant=tenant,
                statuses=options["status"],
                dry_run=options["dry_run"],
                batch_size=options["batch_size"],
                progress=self._progress,
            )
        except DomainError as error:
            raise CommandError(str(error)) from error
        if options["dry_run"]:
            self.stdout.write(
                f"Would delete {outcome.jobs} job(s), {outcome.logs} log line(s) and "
                f"{len(outcome.files)} stored file(s)."
            )
        else:
            self.stdout.write(
                f"Deleted {outcome.jobs} job(s) and {outcome.logs} log line(s) in "
                f"{outcome.batches} batch(es), the longest {outcome.longest_batch_seconds:.3f} s; "
                f"{outcome.rq_records} RQ record(s), {outcome.once_markers} once-marker(s) and "
                f"{len(outcome.files)} stored file(s) "
                "removed."
            )
        for slug, count in outcome.per_tenant.items():
            self.stdout.write(f"  {slug}: {count}")
        for name in outcome.files[:FILES_LISTED]:
            self.stdout.write(f"  file {name}")
        if len(outcome.files) > FILES_LISTED:
            self.stdout.write(f"  … and {len(outcome.files) - FILES_LISTED} more file(s)")

    def _progress(self, done: int, total: int) -> None:
        """A bar on a terminal; elsewhere (cron, logs) a line per tenth of the way."""
        percent = done * 100 // max(total, 1)
        if sys.stderr.isatty():
            filled = BAR_WIDTH * percent // 100
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stderr.write(f"\r  [{bar}] {percent:3d}% {done:,} of {total:,}", ending="")
            if done >= total:
                self.stderr.write("")
        elif percent // 10 > self._shown // 10:
            self._shown = percent
            self.stderr.write(f"  {percent}% ({done:,} of {total:,} jobs deleted)")
