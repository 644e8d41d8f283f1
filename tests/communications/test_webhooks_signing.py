"""Signatures as receivers check them, the documented verifier, Retry-After and the SSRF rules."""

import base64
import ipaddress
import secrets
import time
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from communications import webhook_receiver
from communications.signing import (
    make_secret,
    signature_header,
    standard_secret,
    standard_signature,
)
from communications.ssrf import Unresolvable, UnsafeURL, check_url, describe
from communications.webhook_sender import parse_retry_after, retry_delay
from tests.communications.webhooks_receiver import docs_snippet, docs_verifier

BODY = b'{"id":"e1","type":"contact.created"}'


def headers(signature: str, timestamp: int | str) -> Message:
    message = Message()
    message["conveyor-timestamp"] = str(timestamp)  # any case: receivers' headers ignore it
    message["conveyor-signature"] = signature
    return message


def standard_headers(signature: str, timestamp: int, message_id: str = "msg_1") -> dict:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_the_standardwebhooks_library_verifies_a_signature_by_either_secret() -> None:
    new, old = make_secret(), make_secret()
    now = int(time.time())
    signed = standard_headers(standard_signature([new, old], "msg_1", now, BODY), now)

    assert Webhook(new).verify(BODY, signed) == {"id": "e1", "type": "contact.created"}
    assert Webhook(old).verify(BODY, signed)
    with pytest.raises(WebhookVerificationError):
        Webhook(make_secret()).verify(BODY, signed)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(BODY, {**signed, "webhook-id": "msg_2"})


def test_the_standard_signature_matches_the_librarys_own_for_the_same_message() -> None:
    secret = make_secret()
    at = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)

    expected = Webhook(secret).sign("msg_1", at, BODY)

    assert standard_signature([secret], "msg_1", int(at.timestamp()), BODY) == expected
    assert standard_secret(secret) == secret


def test_a_secret_made_by_an_earlier_release_signs_with_the_bytes_it_encodes() -> None:
    earlier = "whsec_" + secrets.token_urlsafe(32)  # URL-safe, unpadded
    while "-" not in earlier and "_" not in earlier[6:]:
        earlier = "whsec_" + secrets.token_urlsafe(32)
    now = int(time.time())
    signed = standard_headers(standard_signature([earlier], "m", now, BODY), now, "m")

    converted = standard_secret(earlier)

    assert base64.b64decode(converted[6:]) == base64.urlsafe_b64decode(earlier[6:] + "=")
    assert Webhook(converted).verify(BODY, signed)


def test_the_docs_snippet_is_the_receiver_module_word_for_word() -> None:
    assert docs_snippet() == Path(webhook_receiver.__file__).read_text()


def test_the_documented_verifier_accepts_a_fresh_signature_by_either_secret() -> None:
    verify = docs_verifier()
    new, old = make_secret(), make_secret()
    now = int(time.time())
    signed = headers(signature_header([new, old], now, BODY), now)

    assert verify(new, signed, BODY)
    assert verify(old, signed, BODY)
    assert not verify(make_secret(), signed, BODY)


def test_the_documented_verifier_refuses_a_changed_body_or_an_old_timestamp() -> None:
    verify = docs_verifier()
    secret = make_secret()
    now = int(time.time())
    stale = now - 301

    assert not verify(secret, headers(signature_header([secret], now, BODY), now), BODY + b" ")
    assert not verify(secret, headers(signature_header([secret], stale, BODY), stale), BODY)
    assert not verify(secret, headers("v1=", now), BODY)
    assert not verify(secret, headers(signature_header([secret], now, BODY), "²"), BODY)
    assert not verify(secret, Message(), BODY)


def test_the_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"whsec_k", b"1700000000." + BODY, hashlib.sha256).hexdigest()

    assert signature_header(["whsec_k"], 1700000000, BODY) == f"v1={expected}"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Sun, 22 Nov 2026 18:00:30 GMT", 30.0),
        ("Sun, 22 Nov 2026 17:00:00 GMT", 0.0),
        ("10000000", 86400.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(
    value: str | None, seconds: float | None
) -> None:
    now = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)

    assert parse_retry_after(value, now=now) == seconds


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap(settings: Any) -> None:
    settings.CONVEYOR_WEBHOOK_BACKOFF_BASE = 10.0
    settings.CONVEYOR_WEBHOOK_BACKOFF_CAP = 100.0

    delays = {attempt: {retry_delay(attempt) for _ in range(50)} for attempt in (1, 3, 9)}

    assert all(5 <= d <= 10 for d in delays[1])
    assert all(20 <= d <= 40 for d in delays[3])
    assert all(50 <= d <= 100 for d in delays[9])
    assert len(delays[3]) > 1
    assert retry_delay(1, retry_after=7.2) == 8


# --- SSRF ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hooks", "loopback"),
        ("http://10.0.0.1/hooks", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://localhost:8000/hooks", "loopback"),
        ("http://[::1]/hooks", "loopback"),
        ("http://[::ffff:127.0.0.1]/hooks", "loopback"),
        ("http://[::ffff:192.168.1.1]/hooks", "private"),
        ("http://[2002:a00:1::]/hooks", "private"),
        ("http://[fe80::1]/hooks", "link-local"),
        ("http://0.0.0.0/hooks", "unspecified"),
        ("http://[::]/hooks", "unspecified"),
        ("http://224.0.0.1/hooks", "multicast"),
        ("http://240.0.0.1/hooks", "reserved"),
        ("http://100.64.0.1/hooks", "non-public"),
        ("http://2130706433/hooks", "loopback"),
        ("http://internal.acme.test/hooks", "private"),
    ],
)
def test_urls_reaching_our_own_network_are_refused(url: str, reason: str, settings: Any) -> None:
    settings.CONVEYOR_WEBHOOK_ALLOWED_NETWORKS = []
    settings.CONVEYOR_WEBHOOK_STATIC_HOSTS = {"internal.acme.test": ["10.20.30.40"]}

    with pytest.raises(UnsafeURL, match=f"a {reason} address"):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    ["ftp://93.184.215.14/", "file:///etc/passwd", "http://user:pw@93.184.215.14/", "http://"],
)
def test_only_http_urls_without_credentials_are_accepted(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url)


def test_a_host_with_a_public_and_a_private_address_is_refused(settings: Any) -> None:
    settings.CONVEYOR_WEBHOOK_STATIC_HOSTS = {"mixed.test": ["93.184.215.14", "192.168.0.9"]}

    with pytest.raises(UnsafeURL, match=r"192\.168\.0\.9"):
        check_url("https://mixed.test/")


def test_a_name_that_does_not_resolve_is_refused_as_unresolvable() -> None:
    with pytest.raises(Unresolvable):
        check_url("http://no-such-host.invalid/")


def test_public_addresses_pass_with_the_urls_host_port_and_path(settings: Any) -> None:
    settings.CONVEYOR_WEBHOOK_STATIC_HOSTS = {"hooks.example.com": ["93.184.215.14"]}

    target = check_url("https://Hooks.Example.com:8443/in?x=1#frag")

    assert (target.host, target.port, target.path) == ("hooks.example.com", 8443, "/in?x=1")
    assert target.host_header == "hooks.example.com:8443"
    assert target.addresses == (ipaddress.ip_address("93.184.215.14"),)


def test_allowed_networks_let_private_addresses_through(settings: Any) -> None:
    settings.CONVEYOR_WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/8"]

    assert check_url("http://10.1.2.3/").addresses == (ipaddress.ip_address("10.1.2.3"),)
    with pytest.raises(UnsafeURL):
        check_url("http://192.168.1.1/")


def test_an_ipv4_mapped_public_address_is_public() -> None:
    assert describe(ipaddress.ip_address("::ffff:93.184.215.14")) == "public"
