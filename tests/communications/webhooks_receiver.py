"""A real HTTP receiver on 127.0.0.1 for webhook tests, checking signatures with the
`standardwebhooks` package, as docs/webhooks.md tells receivers to (and the earlier
Conveyor-Signature with the docs' own snippet, read from the docs and run)."""

import re
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from standardwebhooks import Webhook, WebhookVerificationError

from communications.models import WebhookDelivery
from tenants.models import Tenant

DOCS = Path(settings.BASE_DIR) / "docs" / "webhooks.md"
WEBHOOK_SETTINGS = {
    "CONVEYOR_WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.1/32"],
    "CONVEYOR_WEBHOOK_BACKOFF_BASE": 0.0,
    "CONVEYOR_WEBHOOK_TIMEOUT": 2.0,
}


def docs_snippet() -> str:
    """The Python block of docs/webhooks.md that defines `verify_webhook`."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    return next(block for block in blocks if "def verify_webhook(" in block)


def docs_verifier() -> Callable[..., bool]:
    namespace: dict[str, Any] = {}
    exec(docs_snippet(), namespace)
    return namespace["verify_webhook"]


def standard_verify(secret: str, headers: Message, body: bytes) -> bool:
    """What a receiver using the `standardwebhooks` library concludes (timestamp checked too)."""
    try:
        Webhook(secret).verify(body, dict(headers.items()))
    except WebhookVerificationError:
        return False
    return True


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    path: str
    headers: Message
    body: bytes
    at: float
    verified: bool
    legacy_verified: bool


class Receiver:
    """Answers each POST with the next scripted reply (then `default`), recording every one.

    A request that no known secret verifies (with `standardwebhooks`) gets 401, as a careful
    receiver would answer; whether the earlier Conveyor-Signature verifies is recorded too.
    """

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.secrets: list[str] = []
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.requests: list[Received] = []
        self.verify = standard_verify
        self.legacy_verify = docs_verifier()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.handle_error = lambda *args: None  # type: ignore[method-assign]
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def reply(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def _answer(self, path: str, headers: Message, body: bytes) -> Reply:
        verified = any(self.verify(secret, headers, body) for secret in self.secrets)
        legacy = any(self.legacy_verify(secret, headers, body) for secret in self.secrets)
        self.requests.append(Received(path, headers, body, time.monotonic(), verified, legacy))
        if not verified:
            return Reply(401, b"bad signature")
        return self.script.popleft() if self.script else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                reply = receiver._answer(self.path, self.headers, body)
                time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the sender gave up waiting (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[Receiver]:
    running = Receiver()
    running.thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()


def make_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate for `host` and its key, made by the openssl command."""
    cert, key = directory / f"{host}.pem", directory / f"{host}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec"),
            *("-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"),
            *("-subj", f"/CN={host}", "-keyout", str(key), "-out", str(cert)),
            *("-addext", f"subjectAltName=DNS:{host}"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(name="tls_receiver")
def tls_receiver_fixture(tmp_path: Path) -> Iterator[tuple[Receiver, Path]]:
    """A receiver serving https with a certificate for hooks.acme.test (and that file)."""
    cert, key = make_certificate(tmp_path, "hooks.acme.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    running = Receiver(tls=context)
    running.thread.start()
    yield running, cert
    running.server.shutdown()
    running.server.server_close()


@pytest.fixture(name="webhook_settings")
def webhook_settings_fixture(settings: Any) -> Any:
    """The local receiver is allowed, retries come at once, a POST may take 2 s."""
    for name, value in WEBHOOK_SETTINGS.items():
        setattr(settings, name, value)
    return settings


def status_of(delivery: WebhookDelivery) -> str:
    return WebhookDelivery.objects.values_list("status", flat=True).get(pk=delivery.pk)


def finished(*deliveries: WebhookDelivery) -> Callable[[], bool]:
    return lambda: all(status_of(d) in WebhookDelivery.FINISHED for d in deliveries)


def deliveries_of(tenant: Tenant) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.for_tenant(tenant).order_by("created_at"))
