from typing import Any

from django.core.management.base import BaseCommand, CommandError

from communications.secrets import UnreadableSecret
from communications.services.senders import rotate_sender_credentials


class Command(BaseCommand):
    help = (
        "Re-encrypt every sender's credentials with the first of CONVEYOR_SECRET_KEYS "
        "(after putting a new key first; remove the old key once this has run)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rotated = rotate_sender_credentials()
        except UnreadableSecret as error:
            raise CommandError(
                f"{error} Keep the old key in the list until this succeeds."
            ) from None
        self.stdout.write(f"re-encrypted the credentials of {rotated} sender(s)")
