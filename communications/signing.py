"""Webhook signatures: the Standard Webhooks one, and Conveyor's earlier one beside it.

Standard Webhooks (`webhook-signature`): `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
keyed with the bytes the `whsec_<base64>` secret encodes; receivers verify it with the
`standardwebhooks` libraries. `Conveyor-Signature` (earlier releases, see webhook_receiver):
`v1=<hex HMAC-SHA256 of "{timestamp}.{body}">` keyed with the secret's text itself.
"""

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable

SIGNATURE_VERSION = "v1"
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# Secrets made before Standard Webhooks signing were URL-safe base64 without padding.
_URL_SAFE = str.maketrans("-_", "+/")


def make_secret() -> str:
    """A new endpoint secret: `whsec_` and 32 random bytes in standard base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret: the bytes its base64 encodes (either alphabet).

    Conveyor makes only base64 secrets; any other text signs with its own bytes rather than
    failing a delivery."""
    encoded = secret.removeprefix(SECRET_PREFIX).translate(_URL_SAFE)
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        return secret.encode()


def standard_secret(secret: str) -> str:
    """The secret as the `standardwebhooks` libraries read it (standard base64).

    The same text for secrets made now; for one made by an earlier release (URL-safe), the form
    to give those libraries."""
    return SECRET_PREFIX + base64.b64encode(secret_key(secret)).decode()


def standard_signature(secrets: Iterable[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value: one `v1,<base64>` per secret, space-separated, current first."""
    message = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        f"{SIGNATURE_VERSION},"
        + base64.b64encode(hmac.new(secret_key(s), message, hashlib.sha256).digest()).decode()
        for s in secrets
    )


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Conveyor-Signature's HMAC-SHA256 of `{timestamp}.{body}` with the secret, in hex."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """The Conveyor-Signature value: one `v1=<hex>` per secret, the current one first."""
    return ", ".join(f"{SIGNATURE_VERSION}={sign(secret, timestamp, body)}" for secret in secrets)
