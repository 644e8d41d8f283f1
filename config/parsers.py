"""The API's edge for request bodies: JSON that PostgreSQL and Python can hold, or a 400.

Refused with a message naming the problem: NUL characters (jsonb cannot store them), lone
surrogates (not text), NaN and infinities (not JSON), and nesting deeper than
`API_MAX_JSON_DEPTH` (a few thousand levels exhaust the parser's recursion).
"""

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as error:
            raise ParseError(f"The body is not valid {encoding}: {error.reason}.") from None
        if not text.strip():
            return {}
        try:
            data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        except RecursionError:
            raise ParseError(_too_deep()) from None
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from None
        check_json_value(data)
        return data


def check_json_value(data: Any) -> None:
    """Raise ParseError if `data` nests too deep or holds text PostgreSQL cannot store."""
    limit = settings.API_MAX_JSON_DEPTH
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth > limit:
                raise ParseError(_too_deep())
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_text(key)
                stack.append((item, depth + 1))


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ParseError("Text in the body may not contain NUL (\\u0000) characters.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ParseError(
            "Text in the body may not contain lone surrogates (\\ud800-\\udfff)."
        ) from None


def _refuse_constant(name: str) -> Any:
    raise ParseError(f"{name} is not a JSON number: send a finite number.")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ParseError(f"The number {text[:40]} is too large: send a finite number.")
    return value


def _too_deep() -> str:
    return f"The JSON body is nested deeper than {settings.API_MAX_JSON_DEPTH} levels."
