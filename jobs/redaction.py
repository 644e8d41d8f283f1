"""Hiding secrets in payloads wherever they are shown or logged."""

import re
from typing import Any

REDACTED = "••••••"
_SECRET_KEY = re.compile(r"password|passwd|token|secret|api[_-]?key|authorization|signature", re.I)


def is_secret_key(key: Any) -> bool:
    return bool(_SECRET_KEY.search(str(key)))


def has_secrets(value: Any) -> bool:
    """Whether `value` holds a secret-looking key at any depth (what `redact` would hide)."""
    if isinstance(value, dict):
        return any(is_secret_key(key) or has_secrets(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(has_secrets(item) for item in value)
    return False


def redact(value: Any) -> Any:
    """A copy of `value` with the values of secret-looking keys replaced, at any depth."""
    if isinstance(value, dict):
        return {
            key: REDACTED if _SECRET_KEY.search(str(key)) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def restore_redacted(edited: Any, stored: Any) -> Any:
    """`edited` (a redacted value a form showed, perhaps changed) with each secret still shown
    as the mask given back its stored value, so a form can show secrets masked and save."""
    if isinstance(edited, dict) and isinstance(stored, dict):
        return {
            key: stored[key]
            if is_secret_key(key) and item == REDACTED and key in stored
            else restore_redacted(item, stored.get(key))
            for key, item in edited.items()
        }
    if isinstance(edited, list) and isinstance(stored, list) and len(edited) == len(stored):
        return [restore_redacted(item, old) for item, old in zip(edited, stored, strict=True)]
    return edited


# A path to a file on the server, as a traceback names it: `File "/srv/app/jobs/x.py", line 3`.
_SERVER_PATH = re.compile(r'File "(?:[^"]*/)?([^"/]+)"')


def trim_traceback(text: str) -> str:
    """A traceback for a tenant's eyes: file names without the server's directories."""
    return _SERVER_PATH.sub(r'File "\1"', text)
