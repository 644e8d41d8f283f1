"""manage.py setup_demo: the demo tenant, an `admin` superuser and an API key, printed."""

import os
from typing import Any

from django.core.management.base import BaseCommand

from tenants.services import set_up_demo


class Command(BaseCommand):
    help = (
        "Create or refresh the demo tenant, the superuser 'admin' (password from DEMO_PASSWORD, "
        "reset on each run) and a new 'demo' API key; earlier demo keys are revoked."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("DEMO_PASSWORD") or "conveyor-demo"
        base_url = (os.environ.get("CONVEYOR_BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
        demo = set_up_demo(password=password)
        self.stdout.write(
            f"Demo tenant {demo.tenant.slug!r} ({demo.tenant.name}) is ready.\n"
            f"  Admin:    {base_url}/admin/\n"
            f"  Login:    {demo.user.username}\n"
            f"  Password: {password}\n"
            f"  API key:  {demo.raw_key}\n"
            f"  Try:      curl -H 'Authorization: Bearer {demo.raw_key}' {base_url}/api/v1/me/\n"
        )
