"""manage.py create_api_token --user USERNAME [--tenant SLUG] [--name NAME]"""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.management.lookups import get_tenant, get_user
from tenants.services import create_api_key


class Command(BaseCommand):
    help = "Create an API key for a user and print it (it is shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user", required=True, metavar="USERNAME", help="Who the key acts as."
        )
        parser.add_argument("--tenant", metavar="SLUG", help="Bind the key to this tenant only.")
        parser.add_argument("--name", default="command line", help="What the key is for.")

    def handle(self, *args: Any, user: str, tenant: str | None, name: str, **options: Any) -> None:
        key_user = get_user(user)
        key_tenant = get_tenant(tenant) if tenant else None
        try:
            _key, raw_key = create_api_key(user=key_user, name=name, tenant=key_tenant)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(raw_key)
