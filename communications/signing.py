"""Webhook signatures: how Conveyor signs a delivery (receivers verify with webhook_receiver)."""

import hashlib
import hmac
import secrets
from collections.abc import Iterable

SIGNATURE_VERSION = "v1"
SECRET_PREFIX = "whsec_"


def make_secret() -> str:
    """A new endpoint secret: 32 random bytes, URL-safe."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of `{timestamp}.{body}` with the secret, in hex."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """The Conveyor-Signature value: one `v1=<hex>` per secret, the current one first."""
    return ", ".join(f"{SIGNATURE_VERSION}={sign(secret, timestamp, body)}" for secret in secrets)
