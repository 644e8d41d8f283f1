"""manage.py seed_demo: the demo tenant's sample data, once (`--reset` starts over)."""

import os
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.services import DemoError, reset_demo, seed_demo
from tenants.models import Tenant
from tenants.services import DEMO_SLUG, DEMO_USERNAME, set_up_demo


class Command(BaseCommand):
    help = (
        "Give the demo tenant sample data through the product's own services and jobs: "
        "contacts, templates, a finished campaign, a report, schedules, webhook endpoints and "
        "jobs in every state. Runs once; --reset deletes the demo tenant and everything it owns "
        "first (a new API key is printed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset", action="store_true", help="delete the demo tenant's data and seed again"
        )
        parser.add_argument(
            "--receiver-url",
            default=os.environ.get("DEMO_RECEIVER_URL", "http://127.0.0.1:8001"),
            help="the demo webhook receiver (default: DEMO_RECEIVER_URL or http://127.0.0.1:8001)",
        )

    def handle(self, *args: Any, reset: bool, receiver_url: str, **options: Any) -> None:
        if not receiver_url.startswith(("http://", "https://")):
            raise CommandError(f"--receiver-url {receiver_url!r}: give an http(s) URL.")
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if reset and tenant is not None:
            reset_demo(tenant)
            self.stdout.write(f"Deleted the demo tenant {DEMO_SLUG!r} and its data.")
            tenant = None
        owner = User.objects.filter(username=DEMO_USERNAME, is_superuser=True).first()
        if tenant is None or owner is None:
            setup = set_up_demo(password=os.environ.get("DEMO_PASSWORD") or "conveyor-demo")
            tenant, owner = setup.tenant, setup.user
            self.stdout.write(f"Demo tenant {tenant.slug!r}; API key: {setup.raw_key}")
        try:
            seeded = seed_demo(
                tenant,
                user=owner,
                receiver_url=receiver_url,
                say=lambda step: self.stdout.write(f"Demo data: {step}…"),
            )
        except DemoError as error:
            raise CommandError(f"The demo data is incomplete: {error}") from None
        if seeded is None:
            self.stdout.write(
                "The demo tenant has its sample data already (seed_demo --reset starts over)."
            )
            return
        self.stdout.write(
            f"Demo data ready: {seeded.contacts} contacts, {seeded.templates} templates, a "
            f"finished campaign of {seeded.campaign_messages} messages, {seeded.reports} PDF "
            f"report, {seeded.schedules} schedules, {seeded.webhook_endpoints} webhook "
            f"endpoints, {seeded.jobs} jobs."
        )
