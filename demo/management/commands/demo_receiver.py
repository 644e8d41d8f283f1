"""manage.py demo_receiver: the local webhook receiver the demo tenant's endpoints point at."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.receiver import DemoReceiver


class Command(BaseCommand):
    help = (
        "Receive the demo tenant's webhooks on 127.0.0.1 (POST /hooks verifies the Standard "
        "Webhooks signature; POST /flaky answers 503; GET / lists what arrived), until Ctrl-C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8001, help="default: 8001")

    def handle(self, *args: Any, port: int, **options: Any) -> None:
        if not 0 < port < 65536:
            raise CommandError(f"--port {port}: choose a port between 1 and 65535.")
        try:
            receiver = DemoReceiver("127.0.0.1", port)
        except OSError as error:
            raise CommandError(f"Cannot listen on 127.0.0.1:{port}: {error}") from None
        self.stdout.write(f"Receiving webhooks on {receiver.url}/hooks (list: {receiver.url}/)")
        try:
            receiver.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            receiver.server.server_close()
