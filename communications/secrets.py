"""Provider credentials at rest: a JSON object encrypted with Fernet keys from the environment.

`CONVEYOR_SECRET_KEYS` lists the keys, newest first: the first encrypts, any of them decrypts,
so a new key is put in front, `rotate_sender_credentials` re-encrypts every stored secret with
it, and the old key is then removed. Without the setting one key is derived from SECRET_KEY.
"""

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class UnreadableSecret(Exception):
    """No configured key decrypts the stored value (a key was removed too early)."""


def _keys() -> MultiFernet:
    raw = list(settings.CONVEYOR_SECRET_KEYS)
    if not raw:
        digest = hashlib.sha256(f"conveyor-credentials:{settings.SECRET_KEY}".encode()).digest()
        raw = [base64.urlsafe_b64encode(digest).decode()]
    try:
        return MultiFernet([Fernet(key) for key in raw])
    except ValueError as error:
        raise ImproperlyConfigured(
            "CONVEYOR_SECRET_KEYS must be Fernet keys (32 url-safe base64-encoded bytes each)."
        ) from error


def encrypt(values: dict[str, str]) -> str:
    """The encrypted form of `values` (an empty object stays an empty string)."""
    if not values:
        return ""
    return _keys().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt(token: str) -> dict[str, Any]:
    """The values `encrypt` was given; UnreadableSecret if no key opens them."""
    if not token:
        return {}
    try:
        return dict(json.loads(_keys().decrypt(token.encode())))
    except InvalidToken:
        raise UnreadableSecret(
            "The stored credentials cannot be decrypted with CONVEYOR_SECRET_KEYS."
        ) from None


def rotate(token: str) -> str:
    """`token` encrypted again with the first key."""
    if not token:
        return ""
    try:
        return _keys().rotate(token.encode()).decode()
    except InvalidToken:
        raise UnreadableSecret(
            "The stored credentials cannot be decrypted with CONVEYOR_SECRET_KEYS."
        ) from None
