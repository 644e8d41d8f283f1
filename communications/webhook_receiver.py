"""Check that a webhook request came from Conveyor (copy this module into your receiver)."""

import hashlib
import hmac
import time
from collections.abc import Mapping


def verify_webhook(
    secret: str, headers: Mapping[str, str], body: bytes, tolerance: int = 300
) -> bool:
    """True if `body` (the raw request bytes) was signed with `secret` at most
    `tolerance` seconds ago. `headers` must look names up case-insensitively,
    as the request headers of most frameworks do.
    """
    timestamp = headers.get("Conveyor-Timestamp", "")
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    message = timestamp.encode() + b"." + body
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    for part in headers.get("Conveyor-Signature", "").split(","):
        version, _, signature = part.strip().partition("=")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False
