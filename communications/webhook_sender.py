"""One signed POST of a webhook delivery, to the address the SSRF check approved.

The connection goes to the checked IP address, while the Host header, TLS SNI and certificate
check use the URL's host name. Redirects are not followed and at most `READ_LIMIT` bytes of
the response body are read.
"""

import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import urllib3
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from urllib3.exceptions import HTTPError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from communications.models import WebhookDelivery, WebhookEndpoint
from communications.signing import signature_header, standard_signature
from communications.ssrf import Target, Unresolvable, UnsafeURL, check_url

logger = logging.getLogger(__name__)

READ_LIMIT = 1024
EXCERPT_LENGTH = 500
USER_AGENT = "Conveyor-Webhooks/1.0"
# Worth another attempt: the receiver is slow, busy or briefly broken.
RETRYABLE_CODES = frozenset({408, 425, 429})
# The receiver says the endpoint is gone for good: Standard Webhooks disables it at once.
GONE = 410
# Longest wait a Retry-After header may ask for.
MAX_RETRY_AFTER = 24 * 3600


@dataclass
class Outcome:
    """What one attempt got: a response (code, excerpt) or an error."""

    started_at: datetime = field(default_factory=timezone.now)
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""
    duration_ms: int = 0
    retry_after: float | None = None
    address: str = ""
    refused: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def permanent(self) -> bool:
        """No later attempt can do better: a refused URL, or a 3xx/4xx other than 408/425/429."""
        if self.refused:
            return True
        code = self.status_code
        return code is not None and code < 500 and code not in RETRYABLE_CODES

    @property
    def gone(self) -> bool:
        return self.status_code == GONE

    @property
    def summary(self) -> str:
        if self.status_code is not None:
            return f"HTTP {self.status_code}"
        return self.error


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, then the previous one while its grace period lasts."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def encode_body(delivery: WebhookDelivery) -> bytes:
    return json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()


def send_delivery(delivery: WebhookDelivery, *, attempt: int) -> Outcome:
    """POST the delivery to its endpoint once; never raises for network or HTTP trouble."""
    body = encode_body(delivery)
    return _post_checked(
        delivery.endpoint.url, body, signed_headers(delivery, body, attempt=attempt)
    )


def post_json(url: str, data: Any) -> Outcome:
    """POST `data` as JSON to `url` (a Slack-compatible incoming webhook, a workflow's webhook
    step), unsigned, with the same SSRF check (a private address is `refused`), pinned address,
    timeout and read limit as a webhook delivery."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder)
    return _post_checked(url, body.encode(), {})


def _post_checked(url: str, body: bytes, extra_headers: dict[str, str]) -> Outcome:
    """POST `body` as JSON to `url` once its address passes the SSRF check, timed."""
    outcome = Outcome()
    clock = time.monotonic()
    try:
        target = check_url(url)
    except Unresolvable as error:
        outcome.error = str(error)
    except UnsafeURL as error:
        outcome.error, outcome.refused = f"Refused: {error}", True
    else:
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **extra_headers,
        }
        _post(target, body, headers, outcome=outcome)
    outcome.duration_ms = int((time.monotonic() - clock) * 1000)
    return outcome


def signed_headers(delivery: WebhookDelivery, body: bytes, *, attempt: int) -> dict[str, str]:
    """Standard Webhooks' three headers (the id is the event's, the same on every attempt),
    Conveyor's informational ones, and its earlier signature while the endpoint keeps it."""
    timestamp = int(time.time())
    secrets = signing_secrets(delivery.endpoint, timezone.now())
    message_id = str(delivery.event_id)
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secrets, message_id, timestamp, body),
        "Conveyor-Event-Id": message_id,
        "Conveyor-Event-Type": delivery.event_type,
        "Conveyor-Delivery-Id": str(delivery.pk),
        # The same for every attempt, for receivers that drop repeats by this header.
        "Idempotency-Key": str(delivery.pk),
        "Conveyor-Attempt": str(attempt),
    }
    if delivery.endpoint.legacy_signature:
        headers["Conveyor-Timestamp"] = str(timestamp)
        headers["Conveyor-Signature"] = signature_header(secrets, timestamp, body)
    return headers


def _post(target: Target, body: bytes, headers: dict, *, outcome: Outcome) -> None:
    for address in target.addresses:
        outcome.address = str(address)
        pool = _pool(target, str(address))
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
            _read(response, outcome)
            return
        except NewConnectionError as error:
            outcome.error = _describe(error)
            continue  # another address of the host may answer
        except Urllib3Timeout:
            outcome.error = f"Timed out after {settings.CONVEYOR_WEBHOOK_TIMEOUT:g} s."
            return
        except (HTTPError, OSError) as error:
            outcome.error = _describe(error)
            return
        finally:
            pool.close()


def _pool(target: Target, address: str) -> urllib3.HTTPConnectionPool:
    timeout = urllib3.Timeout(total=settings.CONVEYOR_WEBHOOK_TIMEOUT)
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            maxsize=1,
            timeout=timeout,
            retries=False,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=settings.CONVEYOR_WEBHOOK_CA_BUNDLE or None,
        )
    return urllib3.HTTPConnectionPool(
        address, target.port, maxsize=1, timeout=timeout, retries=False
    )


def _read(response: urllib3.BaseHTTPResponse, outcome: Outcome) -> None:
    outcome.status_code = response.status
    outcome.retry_after = parse_retry_after(response.headers.get("Retry-After"))
    try:
        raw = response.read(READ_LIMIT, decode_content=False)
    except (HTTPError, OSError):
        raw = b""  # the status is what counts; a body cut short does not change it
    finally:
        response.close()
    outcome.excerpt = raw.decode("utf-8", errors="replace")[:EXCERPT_LENGTH]


def _describe(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    return f"{type(reason).__name__}: {reason}"[:500]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks to wait (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), MAX_RETRY_AFTER))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or timezone.now())).total_seconds()
    return float(min(max(seconds, 0.0), MAX_RETRY_AFTER))


def retry_delay(attempt: int, retry_after: float | None = None) -> int:
    """Whole seconds before the next attempt: Retry-After if given, else exponential backoff
    with jitter (between half and all of base × 2^(attempt − 1), at most the cap)."""
    if retry_after is not None:
        return math.ceil(retry_after)
    base = settings.CONVEYOR_WEBHOOK_BACKOFF_BASE
    ceiling = min(settings.CONVEYOR_WEBHOOK_BACKOFF_CAP, base * 2 ** (attempt - 1))
    return math.ceil(random.uniform(ceiling / 2, ceiling))
