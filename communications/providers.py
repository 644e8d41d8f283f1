"""Where messages leave the machine: email through Django's mailers, SMS and WhatsApp through a
provider chosen per channel in settings (`console`, `memory` or `http`).

A provider's `send()` returns the provider's message id, or raises `PermanentSendError` (the
provider refused it: a retry cannot help) or `RetryableSendError` (a passing failure, with the
delay the provider asked for when it gave one).
"""

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from email.utils import make_msgid
from functools import lru_cache
from smtplib import SMTPException, SMTPRecipientsRefused, SMTPSenderRefused
from typing import Any, Protocol

import urllib3
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives
from django.utils.module_loading import import_string

from jobs.transport import queueing

logger = logging.getLogger(__name__)

MEMORY_OUTBOX_KEY = "conveyor:memory-provider:outbox"
MEMORY_FAIL_KEY = "conveyor:memory-provider:fail:{}"
MEMORY_REJECT_KEY = "conveyor:memory-provider:reject"
MAX_RETRY_AFTER = 3600.0


class SendError(Exception):
    """The provider did not take the message."""


class PermanentSendError(SendError):
    """The provider refused the message (bad number, 4xx): sending it again cannot help."""


class RetryableSendError(SendError):
    """A passing failure (429, 5xx, timeout); `delay` is the provider's Retry-After if given."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


@dataclass(frozen=True)
class Outgoing:
    """One message as a provider sees it; `reference` is our message id (an idempotency key)."""

    channel: str
    to: str
    text: str
    reference: str
    subject: str = ""
    html: str = ""
    # WhatsApp: an approved template to send instead of text ({"name", "language", "parameters"})
    template: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    def send(self, message: Outgoing) -> str: ...


def build_email(
    message: Outgoing, *, sender: str | None, reply_to: str, headers: dict[str, str]
) -> EmailMultiAlternatives:
    """The email of `message` from `sender`, its HTML as an alternative when it has one."""
    email = EmailMultiAlternatives(
        message.subject,
        message.text,
        sender,
        [message.to],
        reply_to=[reply_to] if reply_to else None,
        headers=headers,
    )
    if message.html:
        email.attach_alternative(message.html, "text/html")
    return email


class EmailProvider:
    """Email through Django's default mailer (SMTP, console, locmem, or any backend by settings),
    from DEFAULT_FROM_EMAIL or a tenant's own address."""

    def __init__(self, *, sender: str | None = None, reply_to: str = "") -> None:
        self.sender, self.reply_to = sender, reply_to

    def send(self, message: Outgoing) -> str:
        message_id = make_msgid(idstring=f"conveyor-{message.reference}")
        email = build_email(
            message, sender=self.sender, reply_to=self.reply_to, headers={"Message-ID": message_id}
        )
        try:
            email.send()
        except (SMTPRecipientsRefused, SMTPSenderRefused) as error:
            raise PermanentSendError(f"The mail server refused it: {error}") from error
        except (SMTPException, OSError) as error:
            raise RetryableSendError(f"The mail server could not be reached: {error}") from error
        return message_id


class ConsoleProvider:
    """Prints each message to stdout: for local development."""

    def send(self, message: Outgoing) -> str:
        sys.stdout.write(f"[{message.channel}] to {message.to}: {message.text}\n")
        sys.stdout.flush()
        return f"console-{message.reference}"


class MemoryProvider:
    """Records each send in a Redis list, so tests read what every worker process sent.

    Each entry is JSON: channel, to, text, reference, at (the send's Unix time) and pid.
    `fail_next()` and `reject()` make it answer like a provider that is down or says no.
    """

    def send(self, message: Outgoing) -> str:
        at = time.time()
        redis = queueing.connection()
        with redis.pipeline(transaction=False) as pipe:
            pipe.sismember(MEMORY_REJECT_KEY, message.to)
            pipe.lpop(MEMORY_FAIL_KEY.format(message.to))
            rejected, failure = pipe.execute()
        if rejected:
            raise PermanentSendError(f"400 Bad Request: {message.to} was rejected.")
        if isinstance(failure, bytes | str):
            delay = float(failure) if float(failure) >= 0 else None
            raise RetryableSendError("503 Service Unavailable", delay=delay)
        entry = {
            "channel": message.channel,
            "to": message.to,
            "text": message.text,
            "reference": message.reference,
            "at": at,
            "pid": os.getpid(),
        }
        redis.rpush(MEMORY_OUTBOX_KEY, json.dumps(entry))
        return f"memory-{message.reference}"


def memory_outbox() -> list[dict[str, Any]]:
    """Every message the memory provider took, in order."""
    return [json.loads(entry) for entry in queueing.connection().lrange(MEMORY_OUTBOX_KEY, 0, -1)]


def fail_next(to: str, *, times: int = 1, retry_after: float | None = None) -> None:
    """The memory provider answers 503 to the next `times` sends to `to`."""
    delay = -1.0 if retry_after is None else retry_after
    queueing.connection().rpush(MEMORY_FAIL_KEY.format(to), *([delay] * times))


def reject(to: str) -> None:
    """The memory provider answers 400 to every send to `to`."""
    queueing.connection().sadd(MEMORY_REJECT_KEY, to)


class HttpProvider:
    """POSTs JSON to a provider's URL.

    Body: {"channel", "to", "from", "body", "reference"}; headers `Authorization` (as
    configured) and `Idempotency-Key` (our message id, for providers that honour it). A 2xx
    answer's JSON `id`, `message_id` or `sid` is the provider's message id. 429, 5xx, timeouts
    and connection errors are retryable (after Retry-After when sent); other 4xx are permanent.
    """

    def __init__(self, *, url: str, auth_header: str = "", sender: str = "", timeout: float = 10):
        if not url:
            raise ImproperlyConfigured("The http messaging provider needs a URL.")
        self.url, self.auth_header, self.sender = url, auth_header, sender
        self.pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(total=timeout), retries=False, maxsize=pool_size()
        )

    def send(self, message: Outgoing) -> str:
        body = {
            "channel": message.channel,
            "to": message.to,
            "from": self.sender,
            "body": message.text,
            "reference": message.reference,
        }
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.reference}
        if self.auth_header:
            headers["Authorization"] = self.auth_header
        try:
            response = self.pool.request(
                "POST", self.url, body=json.dumps(body).encode(), headers=headers
            )
        except urllib3.exceptions.HTTPError as error:
            raise RetryableSendError(f"The provider could not be reached: {error}") from error
        return _provider_id(response, reference=message.reference)


def _provider_id(response: urllib3.BaseHTTPResponse, *, reference: str) -> str:
    answer = read_answer(response)
    for key in ("id", "message_id", "sid"):
        if answer.get(key):
            return str(answer[key])[:200]
    return reference


def read_answer(response: urllib3.BaseHTTPResponse) -> dict[str, Any]:
    """A provider's 2xx JSON answer; 429 and 5xx raise RetryableSendError (with Retry-After),
    any other status PermanentSendError with the first 500 characters of the body."""
    status = response.status
    text = response.data[:500].decode(errors="replace")
    if status == 429 or status >= 500:
        delay = retry_after(response.headers.get("Retry-After"))
        raise RetryableSendError(f"{status} from the provider: {text}", delay=delay)
    if status >= 400 or status < 200:
        raise PermanentSendError(f"{status} from the provider: {text}")
    try:
        answer = json.loads(response.data or b"{}")
    except ValueError:
        answer = {}
    return answer if isinstance(answer, dict) else {}


def pool_size() -> int:
    """Connections a client keeps: one per provider call a campaign batch makes at once."""
    return max(4, int(settings.CONVEYOR_CAMPAIGN_SEND_CONCURRENCY))


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.replace(".", "", 1).isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), MAX_RETRY_AFTER))


def get_provider(channel: str) -> Provider:
    """The provider that sends `channel`: Django's mailer for email, settings for the others."""
    if channel == "email":
        return EmailProvider()
    config = settings.CONVEYOR_MESSAGING.get(channel)
    if config is None:
        raise ImproperlyConfigured(f"No messaging provider is configured for {channel!r}.")
    return _provider(
        config["PROVIDER"],
        url=config.get("URL", ""),
        auth_header=config.get("AUTH_HEADER", ""),
        sender=config.get("FROM", ""),
        timeout=float(config.get("TIMEOUT", 10)),
    )


@lru_cache(maxsize=16)
def _provider(name: str, *, url: str, auth_header: str, sender: str, timeout: float) -> Provider:
    if name == "console":
        return ConsoleProvider()
    if name == "memory":
        return MemoryProvider()
    if name == "http":
        return HttpProvider(url=url, auth_header=auth_header, sender=sender, timeout=timeout)
    try:
        provider_class = import_string(name)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"Unknown messaging provider {name!r}: use console, memory, http or a dotted path."
        ) from error
    return provider_class()
