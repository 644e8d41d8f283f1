"""What a report type produces: summary figures, charts and tables, independent of format."""

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.utils import timezone

from tenants.models import Tenant

Progress = Callable[[int, str], None]

# Column types: how renderers show and type a value.
TEXT, INT, FLOAT, PERCENT, SECONDS, DATE, DATETIME = (
    "text",
    "int",
    "float",
    "percent",
    "seconds",
    "date",
    "datetime",
)


@dataclass(frozen=True)
class Column:
    """A table column; `printed` False leaves it out of PDFs (kept in XLSX, CSV and HTML)."""

    label: str
    type: str = TEXT
    printed: bool = True


@dataclass
class Table:
    """One table of a report; `name` names its sheet (XLSX) and file (CSV)."""

    name: str
    title: str
    columns: list[Column]
    rows: list[list[Any]]
    note: str = ""


@dataclass
class Chart:
    """A bar chart (stacked when several series) or a line chart over `labels`."""

    title: str
    kind: str
    labels: list[str]
    series: list[tuple[str, list[float | None]]]  # None: no value (a gap in a line)
    unit: str = ""


@dataclass(frozen=True)
class Figure:
    label: str
    value: Any
    type: str = INT


@dataclass
class ReportData:
    title: str
    tenant_name: str
    start: date
    end: date
    time_zone: str
    filters: dict[str, str]
    generated_at: datetime
    figures: list[Figure] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def generated_local(self) -> datetime:
        return self.generated_at.astimezone(zoneinfo.ZoneInfo(self.time_zone))


@dataclass(frozen=True)
class Period:
    """The report's days, `start` to `end` inclusive, in `time_zone`."""

    start: date
    end: date
    time_zone: str

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=self.zone)

    @property
    def until(self) -> datetime:
        """The first moment after the period."""
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=self.zone)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


@dataclass
class BuildContext:
    """What a report type's `build` gets: whose data, which period, filters, progress."""

    tenant: Tenant
    period: Period
    filters: dict[str, str]
    generated_at: datetime = field(default_factory=timezone.now)
    progress: Progress = lambda percent, message: None


def rate(part: int, whole: int) -> float:
    """`part` of `whole` in percent, one decimal."""
    return round(100 * part / whole, 1) if whole else 0.0


def rate_or_none(part: int, whole: int) -> float | None:
    """`rate`, or None when there is nothing to compare (drawn as a gap in line charts)."""
    return rate(part, whole) if whole else None


def seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)
