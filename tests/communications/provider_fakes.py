"""A local HTTP server speaking the shapes of Twilio's Messages API, Meta's WhatsApp Cloud API,
the email APIs (Postmark, SendGrid, Mailgun, Resend, Brevo), Amazon SES v2's SendEmail and
Amazon SNS's ConfirmSubscription, so the real client code (boto3's included) runs against it.
Each answer is scripted (status, headers, delay) or a success in the provider's own shape; a
refusal echoes the credential it was given in its error body, as a careless provider might
(for AWS, which never sees the secret key, the access key id), with SES's error code header."""

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: Any


class FakeProvider:
    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.calls: list[Call] = []
        self.delay = 0.0  # for every unscripted answer
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake.answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        if "json" in handler.headers.get("Content-Type", ""):
            body: Any = json.loads(raw)
        else:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        with self.lock:
            self.calls.append(Call(handler.path, dict(handler.headers), body))
            answer = self.script.pop(0) if self.script else Answer(delay=self.delay)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(answer.delay)
        with self.lock:
            self.in_flight -= 1
        headers = {"Content-Type": "application/json", **answer.headers}
        if answer.status >= 300:
            document = self._error(handler, answer.status, headers)
        elif body.get("Action") == "ConfirmSubscription":  # SNS's query API answers in XML
            document, headers["Content-Type"] = SNS_CONFIRMED, "text/xml"
        else:
            document = json.dumps(self._success(handler.path, body))
        try:
            handler.send_response(answer.status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(document.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def _success(self, path: str, body: Any) -> dict[str, Any]:
        n = len(self.calls)
        if path.endswith("/Messages.json"):
            return {"sid": f"SM{n:032d}", "status": "queued"}
        if path.endswith("/1055/messages"):
            return {"messaging_product": "whatsapp", "messages": [{"id": f"wamid.{n}"}]}
        if path.endswith("/messages"):  # Mailgun: /<domain>/messages
            return {"id": f"<mg-{n}@mg.example.com>", "message": "Queued. Thank you."}
        if path.endswith("/emails"):  # Resend
            return {"id": f"re-{n}"}
        if path.endswith("/smtp/email"):  # Brevo
            return {"messageId": f"<brevo-{n}@smtp-relay.example.com>"}
        if path.endswith("/mail/send"):  # SendGrid answers 202 without a body
            return {}
        if path == "/v2/email/outbound-emails":  # Amazon SES v2 SendEmail
            return {"MessageId": f"0100-ses-{n}"}
        return {"To": body["To"], "MessageID": f"pm-{n}", "ErrorCode": 0, "Message": "OK"}

    def _error(self, handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> str:
        credential = _credential(handler.headers)
        if handler.path.startswith("/v2/email/"):
            code = SES_ERRORS.get(status, "InternalFailure" if status >= 500 else "BadRequest")
            headers.setdefault("x-amzn-ErrorType", code)
            detail = f"Email address is not verified (access key {credential})"
            return json.dumps({"message": detail})
        return json.dumps({"code": 20003, "message": f"Authenticate: bad credential {credential}"})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


SES_ERRORS = {400: "MessageRejected", 429: "TooManyRequestsException"}
SNS_CONFIRMED = """<ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <ConfirmSubscriptionResult>
    <SubscriptionArn>arn:aws:sns:eu-west-1:123456789012:ses-events:6f1a</SubscriptionArn>
  </ConfirmSubscriptionResult>
  <ResponseMetadata><RequestId>f5a1c3e2</RequestId></ResponseMetadata>
</ConfirmSubscriptionResponse>"""


def _credential(headers: Any) -> str:
    auth = headers.get("Authorization", "")
    if auth.startswith("AWS4-HMAC-SHA256 Credential="):  # SigV4: the access key id, not the key
        return auth.removeprefix("AWS4-HMAC-SHA256 Credential=").split("/", 1)[0]
    if auth.startswith("Basic "):
        return base64.b64decode(auth[6:]).decode().split(":", 1)[1]
    if auth.startswith("Bearer "):
        return auth[7:]
    return headers.get("X-Postmark-Server-Token", "")


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    yield fake
    fake.close()
