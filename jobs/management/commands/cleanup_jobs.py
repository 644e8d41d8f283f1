import sys
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.exceptions import DomainError
from jobs.cleanup import clean_up_jobs
from jobs.models import Job
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Delete finished jobs and their logs past retention, in short batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=int, metavar="DAYS", help="Override retention (days)."
        )
        parser.add_argument("--tenant", help="Only this tenant (slug).")
        parser.add_argument(
            "--status", action="append", choices=Job.FINISHED, help="Only these (repeatable)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant has the slug {options['tenant']!r}.")
        if options["older_than"] is not None and options["older_than"] < 0:
            raise CommandError("--older-than takes a number of days of 0 or more.")
        older_than = (
            None if options["older_than"] is None else timedelta(days=options["older_than"])
        )
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
        verb = "Would delete" if options["dry_run"] else "Deleted"
        self.stdout.write(
            f"{verb} {outcome.jobs} job(s) and {outcome.logs} log line(s); "
            f"{outcome.rq_records} RQ record(s) cleaned."
        )
        for slug, count in outcome.per_tenant.items():
            self.stdout.write(f"  {slug}: {count}")

    def _progress(self, batch: int) -> None:
        self._done = getattr(self, "_done", 0) + batch
        if sys.stderr.isatty():
            self.stderr.write(f"\r  {self._done} deleted…", ending="")
