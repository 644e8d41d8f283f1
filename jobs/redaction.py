"""Hiding secrets in payloads wherever they are shown or logged."""

import re
from typing import Any

REDACTED = "••••••"
_SECRET_KEY = re.compile(r"password|passwd|token|secret|api[_-]?key|authorization|signature", re.I)


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
