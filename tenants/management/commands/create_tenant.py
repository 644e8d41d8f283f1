"""manage.py create_tenant <slug> --name NAME [--owner USERNAME]"""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.management.lookups import get_user
from tenants.services import create_tenant


class Command(BaseCommand):
    help = "Create a tenant, optionally with an existing user as its owner."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="Short name used in URLs and the X-Tenant header.")
        parser.add_argument("--name", required=True, help="Display name, e.g. 'Acme Ltd'.")
        parser.add_argument("--owner", metavar="USERNAME", help="An existing user to own it.")

    def handle(self, *args: Any, slug: str, name: str, owner: str | None, **options: Any) -> None:
        owner_user = get_user(owner) if owner else None
        try:
            tenant = create_tenant(name=name, slug=slug, owner=owner_user)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        suffix = f", owned by {owner_user}" if owner_user else ""
        self.stdout.write(
            self.style.SUCCESS(f"Created tenant {tenant.slug} ({tenant.name}){suffix}.")
        )
