"""When a schedule runs: pure functions over cron expressions, intervals and run-at times.

A cron expression is read in the schedule's own time zone, on the local wall clock:

- a wall time that a spring-forward gap skips (02:30 in New York on the second Sunday of March)
  runs once that day, at the first valid time after the gap (03:00);
- a wall time that a fall-back repeats (01:30 on the first Sunday of November) runs once, at
  its first occurrence.

croniter 7, given aware datetimes, gets the gap right but matches a repeated wall time twice, so
it is given naive wall-clock times and the step to real instants is taken here (PEP 495 `fold`).
Intervals count real elapsed seconds and ignore clock changes. Every time returned is in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, CroniterError, croniter
from django.core.exceptions import ValidationError

if TYPE_CHECKING:
    from jobs.models import Schedule

CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
CRON_FIELDS = "minute hour day-of-month month day-of-week"
# Wall times tried before giving up: a repeated hour makes a per-minute cron skip 60 of them.
MAX_CANDIDATES = 1000
MINUTES_PER_DAY = 24 * 60  # no gap is longer than a day (Samoa skipped 30 Dec 2011)
PROBE_START = datetime(2000, 1, 1)  # noqa: DTZ001 (croniter is given wall-clock times)


def check_cron(expression: str) -> str:
    """The expression with its spacing tidied; ValidationError unless it can match a date."""
    expression = " ".join(expression.split())
    if not expression:
        raise ValidationError("Give a cron expression, e.g. '30 2 * * *' for 02:30 every day.")
    if expression.startswith("@") and expression.lower() not in CRON_ALIASES:
        raise ValidationError(
            f"Unknown cron alias {expression!r}: use one of {', '.join(CRON_ALIASES)}."
        )
    fields = len(expression.split())
    if not expression.startswith("@") and fields != 5:
        raise ValidationError(
            f"{expression!r} has {fields} field(s); a cron expression has five: {CRON_FIELDS}."
        )
    try:
        croniter(expression, PROBE_START).get_next(datetime)
    except CroniterBadDateError:
        raise ValidationError(f"{expression!r} never matches a date (e.g. 30 February).") from None
    except (CroniterError, ValueError, KeyError) as error:
        raise ValidationError(f"{expression!r} is not a valid cron expression ({error}).") from None
    return expression


def get_zone(name: str) -> ZoneInfo:
    """The IANA time zone called `name`; ValidationError, with a suggestion, if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    hint = _zone_names().get(name.strip().lower())
    also = f" Did you mean {hint}?" if hint else ""
    raise ValidationError(
        f"Unknown time zone {name!r}: use an IANA name such as Europe/London or "
        f"America/New_York.{also}"
    )


@cache
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def next_cron_time(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first moment after `after` at which the expression matches `zone`'s wall clock."""
    wall = after.astimezone(zone).replace(tzinfo=None)
    candidates = croniter(expression, wall)
    for _ in range(MAX_CANDIDATES):
        moment = wall_to_instant(candidates.get_next(datetime), zone)
        # A wall time may map to a moment before `after`: the second pass of a repeated hour.
        if moment > after:
            return moment
    raise ValueError(f"{expression!r} found no time after {after.isoformat()} in {zone}.")


def wall_to_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The real moment of a naive wall time in `zone`.

    A time the clock shows twice gives its first occurrence (fold=0); a time the clock skips
    gives the end of the gap, the first valid time after it.
    """
    local = wall.replace(tzinfo=zone, fold=0)
    if _exists(local):
        return local.astimezone(UTC)
    minute = wall.replace(second=0, microsecond=0)
    for _ in range(MINUTES_PER_DAY + 1):
        minute += timedelta(minutes=1)
        if _exists(minute.replace(tzinfo=zone)):
            return minute.replace(tzinfo=zone).astimezone(UTC)
    raise ValueError(f"{wall.isoformat()} is in a gap of more than a day in {zone}.")


def _exists(local: datetime) -> bool:
    """Whether the wall clock of `local`'s zone ever shows `local` (not inside a gap)."""
    round_trip = local.astimezone(UTC).astimezone(local.tzinfo)
    return round_trip.replace(tzinfo=None) == local.replace(tzinfo=None)


def next_interval_time(start: datetime, seconds: int, after: datetime) -> datetime:
    """The first of `start`, `start + seconds`, `start + 2 * seconds`… that is after `after`."""
    if after < start:
        return start
    step = timedelta(seconds=seconds)
    return start + ((after - start) // step + 1) * step


def next_run_after(schedule: Schedule, after: datetime) -> datetime | None:
    """The schedule's first run after `after`, within its start and end; None if none is left."""
    if schedule.starts_at and after < schedule.starts_at:
        after = schedule.starts_at - timedelta(microseconds=1)
    try:
        moment = _next_trigger_time(schedule, after)
    except OverflowError:
        return None  # the next run would fall after the year 9999
    if moment is None or (schedule.ends_at and moment > schedule.ends_at):
        return None
    return moment.astimezone(UTC)


def _next_trigger_time(schedule: Schedule, after: datetime) -> datetime | None:
    if schedule.cron:
        return next_cron_time(schedule.cron, get_zone(schedule.time_zone), after)
    if schedule.interval_seconds:
        start = schedule.starts_at or schedule.created_at or after
        return next_interval_time(start, schedule.interval_seconds, after)
    if schedule.run_at and schedule.run_at > after:
        return schedule.run_at
    return None


def upcoming_runs(schedule: Schedule, *, after: datetime, count: int = 5) -> list[datetime]:
    """The schedule's next `count` run times after `after` (fewer if it ends before)."""
    runs: list[datetime] = []
    moment = next_run_after(schedule, after)
    while moment is not None and len(runs) < count:
        runs.append(moment)
        moment = next_run_after(schedule, moment)
    return runs
