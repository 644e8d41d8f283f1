"""How a value of each column type reads in a PDF or HTML report."""

from datetime import date, datetime
from typing import Any

from reports.types.base import DATE, DATETIME, FLOAT, INT, PERCENT, SECONDS

EMPTY = "—"


def display(value: Any, type: str, *, unit: bool = False) -> str:
    """`value` as text for people; `unit` adds the unit where a column header has none."""
    if value is None or value == "":
        return EMPTY
    if type == INT:
        return f"{int(value):,}"
    if type == PERCENT:
        return f"{value:.1f} %"
    if type == SECONDS:
        text = f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
        return f"{text} s" if unit else text
    if type == FLOAT:
        return f"{value:,.1f}"
    if type == DATE and isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if type == DATETIME and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def is_number(type: str) -> bool:
    return type in (INT, PERCENT, SECONDS, FLOAT)
