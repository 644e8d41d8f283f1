import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rest_framework.exceptions import ValidationError

from config.exceptions import DomainError
from jobs.errors import UnknownKind
from jobs.models import Priority
from jobs.services.jobs import enqueue_job
from tenants.management.lookups import get_tenant


class Command(BaseCommand):
    help = "Enqueue a job of a registered kind for a tenant, with a JSON payload."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", help="A registered kind, e.g. jobs.sleep")
        parser.add_argument("payload", nargs="?", default="{}", help="JSON object (default {}).")
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--priority", default=None, choices=Priority.values)
        parser.add_argument("--queue", help="Override the kind's queue.")
        parser.add_argument("--delay", type=float, help="Seconds to wait before running.")
        parser.add_argument("--idempotency-key", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            payload = json.loads(options["payload"])
        except json.JSONDecodeError as error:
            raise CommandError(f"The payload is not valid JSON: {error}") from error
        tenant = get_tenant(options["tenant"])
        try:
            job = enqueue_job(
                tenant=tenant,
                kind=options["kind"],
                payload=payload,
                priority=options["priority"],
                queue=options["queue"],
                delay=options["delay"],
                idempotency_key=options["idempotency_key"],
            )
        except ValidationError as error:
            raise CommandError(f"Invalid payload: {json.dumps(error.detail)}") from error
        except (UnknownKind, DomainError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"{job.pk} {job.status}")
