"""Trigger math: cron in the schedule's own time zone across DST changes, intervals, windows."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from jobs.models import Schedule
from jobs.triggers import (
    check_cron,
    get_zone,
    next_cron_time,
    next_run_after,
    upcoming_runs,
    wall_to_instant,
)

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def _committed() -> None:
    """Pure functions: these tests need no database (replaces the engine tests' fixture)."""


def runs(expression: str, zone: ZoneInfo, after: datetime, count: int) -> list[str]:
    """The next `count` run times, shown on the zone's wall clock with their UTC offset."""
    shown, moment = [], after
    for _ in range(count):
        moment = next_cron_time(expression, zone, moment)
        shown.append(moment.astimezone(zone).isoformat())
    return shown


@pytest.mark.parametrize(
    ("zone", "expression", "day_before", "expected"),
    [
        (
            NEW_YORK,
            "30 2 * * *",
            datetime(2026, 3, 7, 12, tzinfo=NEW_YORK),
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
        ),
        (
            LONDON,
            "30 1 * * *",
            datetime(2026, 3, 28, 12, tzinfo=LONDON),
            ["2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"],
        ),
    ],
)
def test_a_daily_time_in_the_spring_forward_gap_runs_once_at_the_end_of_the_gap(
    zone, expression, day_before, expected
):
    assert runs(expression, zone, day_before, 2) == expected


@pytest.mark.parametrize(
    ("zone", "day_before", "expected"),
    [
        (
            NEW_YORK,
            datetime(2026, 10, 31, 12, tzinfo=NEW_YORK),
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        ),
        (
            LONDON,
            datetime(2026, 10, 24, 12, tzinfo=LONDON),
            ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"],
        ),
    ],
)
def test_a_daily_time_in_the_repeated_fall_back_hour_runs_once_at_its_first_occurrence(
    zone, day_before, expected
):
    assert runs("30 1 * * *", zone, day_before, 2) == expected


def test_croniter_alone_would_run_a_repeated_time_twice_which_is_why_we_step_in():
    from croniter import croniter

    matches = croniter("30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=NEW_YORK))

    first, second = matches.get_next(datetime), matches.get_next(datetime)
    assert first.date() == second.date() == date(2026, 11, 1)
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)


def test_every_twenty_minutes_skips_the_gap_and_does_not_repeat_the_repeated_hour():
    spring = runs("*/20 * * * *", NEW_YORK, datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK), 3)
    autumn = runs("*/20 * * * *", NEW_YORK, datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK), 3)

    assert spring == [
        "2026-03-08T01:40:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T03:20:00-04:00",
    ]
    assert autumn == [
        "2026-11-01T01:40:00-04:00",
        "2026-11-01T02:00:00-05:00",
        "2026-11-01T02:20:00-05:00",
    ]


def test_a_moment_inside_the_second_pass_of_the_repeated_hour_does_not_run_it_again():
    second_pass = datetime(2026, 11, 1, 1, 10, tzinfo=NEW_YORK, fold=1)

    assert runs("30 1 * * *", NEW_YORK, second_pass, 1) == ["2026-11-02T01:30:00-05:00"]


def test_wall_times_become_real_moments_first_occurrence_or_end_of_gap():
    repeated = wall_to_instant(datetime(2026, 11, 1, 1, 30), NEW_YORK)  # noqa: DTZ001
    skipped = wall_to_instant(datetime(2026, 3, 8, 2, 30), NEW_YORK)  # noqa: DTZ001

    assert repeated == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert skipped == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * *", "has 3 field(s); a cron expression has five"),
        ("* * * * * *", "has 6 field(s)"),
        ("61 * * * *", "is not a valid cron expression"),
        ("every day", "has 2 field(s)"),
        ("@fortnightly", "Unknown cron alias"),
        ("0 0 30 2 *", "never matches a date"),
        ("", "Give a cron expression"),
    ],
)
def test_invalid_cron_expressions_are_refused_with_a_clear_message(expression, message):
    with pytest.raises(ValidationError) as refused:
        check_cron(expression)

    assert message in refused.value.messages[0]


def test_cron_spacing_and_aliases_are_accepted():
    assert check_cron("  0   3 * * * ") == "0 3 * * *"
    assert check_cron("@daily") == "@daily"


def test_an_unknown_time_zone_is_refused_with_a_hint_when_only_the_case_is_wrong():
    with pytest.raises(ValidationError) as wrong_case:
        get_zone("europe/london")
    with pytest.raises(ValidationError) as unknown:
        get_zone("Mars/Olympus_Mons")

    assert "Did you mean Europe/London?" in wrong_case.value.messages[0]
    assert "Unknown time zone 'Mars/Olympus_Mons'" in unknown.value.messages[0]


def test_an_interval_counts_real_seconds_from_its_start_across_a_clock_change():
    start = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 in New York, before the gap
    schedule = Schedule(interval_seconds=3600, starts_at=start)

    hours = upcoming_runs(schedule, after=start, count=3)

    assert [run - start for run in hours] == [timedelta(hours=h) for h in (1, 2, 3)]


def test_start_and_end_bound_the_runs_and_a_one_off_runs_only_once():
    start = datetime(2026, 6, 1, tzinfo=UTC)
    daily = Schedule(cron="0 12 * * *", starts_at=start, ends_at=start + timedelta(days=2))
    once = Schedule(run_at=start)

    assert upcoming_runs(daily, after=start - timedelta(days=10), count=5) == [
        start + timedelta(hours=12),
        start + timedelta(days=1, hours=12),
    ]
    assert next_run_after(once, start - timedelta(seconds=1)) == start
    assert next_run_after(once, start) is None


def test_a_run_that_would_fall_after_the_year_9999_means_no_run_is_left():
    late = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)

    assert next_run_after(Schedule(cron="30 2 * * *"), late) is None
    assert next_run_after(Schedule(interval_seconds=7200, starts_at=late), late) is None
