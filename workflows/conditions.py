"""The small comparison language of step and automation conditions: field, operator, value.

A condition is a list of checks that must all hold, each `{"field": "steps.a.result.status",
"op": "eq", "value": "sent"}`. `field` is a dotted path into plain JSON data (a list index is a
number); nothing is evaluated, so no condition can run code or reach beyond that data.
"""

from collections.abc import Callable, Mapping
from typing import Any

MISSING = object()


def _number_pair(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    )


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """Numbers with numbers and text with text; anything else is false, never an error."""

    def check(a: Any, b: Any) -> bool:
        if _number_pair(a, b) or (isinstance(a, str) and isinstance(b, str)):
            return compare(a, b)
        return False

    return check


def _contains(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return b in a
    return isinstance(a, list) and b in a


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a is not MISSING and a == b,
    "ne": lambda a, b: a != b,
    "gt": _ordered(lambda a, b: a > b),
    "gte": _ordered(lambda a, b: a >= b),
    "lt": _ordered(lambda a, b: a < b),
    "lte": _ordered(lambda a, b: a <= b),
    "in": lambda a, b: isinstance(b, list) and a in b,
    "not_in": lambda a, b: isinstance(b, list) and a not in b,
    "contains": _contains,
    "exists": lambda a, b: a is not MISSING and a is not None,
    "not_exists": lambda a, b: a is MISSING or a is None,
}
VALUELESS = frozenset({"exists", "not_exists"})
MAX_CHECKS = 20


def lookup(data: Any, field: str) -> Any:
    """The value at dotted `field` in `data`, or MISSING."""
    value = data
    for part in field.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def holds(checks: list[dict[str, Any]], data: Any) -> bool:
    """Whether every check holds for `data` (an empty list always holds)."""
    return all(
        OPERATORS[check["op"]](lookup(data, check["field"]), check.get("value")) for check in checks
    )


def describe(checks: list[dict[str, Any]]) -> str:
    """`steps.a.result.status eq "sent" and …`, for the admin and skip reasons."""
    parts = []
    for check in checks:
        text = f"{check['field']} {check['op']}"
        if check["op"] not in VALUELESS:
            text += f" {check.get('value')!r}"
        parts.append(text)
    return " and ".join(parts)


def check_conditions(value: Any, *, fields: Callable[[str], str | None] | None = None) -> list:
    """The checks, well formed; raises ValueError naming what is wrong.

    `fields(field)` may refuse a field with a message (an unknown step, say).
    """
    if not isinstance(value, list):
        raise ValueError("A condition is a list of {field, op, value} checks.")
    if len(value) > MAX_CHECKS:
        raise ValueError(f"A condition has at most {MAX_CHECKS} checks.")
    checked = []
    for index, check in enumerate(value):
        where = f"Check {index + 1}"
        if not isinstance(check, dict) or set(check) - {"field", "op", "value"}:
            raise ValueError(f"{where}: give an object with field, op and value.")
        field, op = check.get("field"), check.get("op")
        if not isinstance(field, str) or not field or len(field) > 200:
            raise ValueError(f"{where}: field is a dotted path such as steps.lookup.result.email.")
        if op not in OPERATORS:
            raise ValueError(f"{where}: op is one of {', '.join(OPERATORS)}.")
        if op not in VALUELESS and "value" not in check:
            raise ValueError(f"{where}: {op} needs a value.")
        if fields is not None and (problem := fields(field)):
            raise ValueError(f"{where}: {problem}")
        checked.append({"field": field, "op": op, "value": check.get("value")})
    return checked
