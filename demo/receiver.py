"""A small webhook receiver for `make run`: the demo tenant's endpoints point at it.

`POST /hooks` checks the Standard Webhooks signature with the `standardwebhooks` package, with
the secrets of the endpoint whose URL it serves (read from the database at each request, so a
rotation is followed), logs the event and answers 204 (401 when no secret verifies).
`POST /flaky` answers 503 with `Retry-After: 3600`. `GET /` lists the last deliveries received.
"""

import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.db import close_old_connections
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from communications.models import WebhookEndpoint
from communications.webhook_sender import signing_secrets

logger = logging.getLogger(__name__)

KEPT = 50
RETRY_AFTER = 3600


@dataclass
class Received:
    at: datetime
    path: str
    event_type: str
    event_id: str
    verified: bool
    status: int


def secrets_for(url: str) -> list[str]:
    """The secrets that sign deliveries to `url` now (current, then one in its grace period)."""
    close_old_connections()
    secrets: list[str] = []
    for endpoint in WebhookEndpoint.objects.filter(url=url):
        secrets += signing_secrets(endpoint, timezone.now())
    return secrets


def verify(secrets: list[str], body: bytes, headers: dict[str, str]) -> bool:
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            continue
        return True
    return False


class DemoReceiver:
    """The HTTP server; `secrets` maps a request's URL to the secrets that may have signed it."""

    def __init__(
        self, host: str, port: int, *, secrets: Callable[[str], list[str]] = secrets_for
    ) -> None:
        self.received: deque[Received] = deque(maxlen=KEPT)
        self.secrets = secrets
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self.host, self.port = host, int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
        """The status and headers for one POST, recorded and logged."""
        if path.rstrip("/") == "/flaky":
            status, extra, verified = 503, {"Retry-After": str(RETRY_AFTER)}, False
        else:
            verified = verify(self.secrets(f"{self.url}{path}"), body, headers)
            status, extra = (204 if verified else 401), {}
        event = _event(body)
        self.received.append(
            Received(
                datetime.now(UTC),
                path,
                event.get("type", "?"),
                event.get("id", "?"),
                verified,
                status,
            )
        )
        logger.info(
            "webhook %s %s on %s: %s, answered %s",
            event.get("type", "?"),
            event.get("id", "?"),
            path,
            "signature verified" if verified else "not verified",
            status,
        )
        return status, extra

    def page(self) -> bytes:
        rows = "".join(
            f"<tr><td>{r.at:%H:%M:%S}</td><td>{escape(r.path)}</td><td>{escape(r.event_type)}</td>"
            f"<td>{escape(r.event_id)}</td><td>{'yes' if r.verified else 'no'}</td>"
            f"<td>{r.status}</td></tr>"
            for r in reversed(self.received)
        )
        return (
            "<!doctype html><title>Demo webhook receiver</title><h1>Deliveries received</h1>"
            "<table><tr><th>time</th><th>path</th><th>event</th><th>id</th><th>verified</th>"
            f"<th>answer</th></tr>{rows}</table>"
        ).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                status, extra = receiver.answer(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                page = receiver.page()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # `answer` logs what matters

        return Handler


def _event(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}
