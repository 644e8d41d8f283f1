"""Schedule services and the scheduler's tick, over a simulated clock (`now=` passed in)."""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from jobs.models import Job, Priority, Schedule
from jobs.services.schedules import (
    SYSTEM_SCHEDULES,
    SYSTEM_TENANT_SLUG,
    ScheduleError,
    create_schedule,
    delete_schedule,
    disable_schedule,
    enable_schedule,
    ensure_system_schedules,
    run_due_schedules,
    run_schedule_now,
    update_schedule,
)
from jobs.triggers import next_run_after
from tenants.models import Tenant

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ALLOW = Schedule.OverlapPolicy.ALLOW


def make_schedule(tenant: Tenant, **fields: Any) -> Schedule:
    """A schedule made by the real service: every minute, jobs.noop, overlapping allowed."""
    defaults: dict[str, Any] = {
        "name": "every minute",
        "kind": "jobs.noop",
        "cron": "* * * * *",
        "overlap_policy": ALLOW,
    }
    return create_schedule(tenant=tenant, **{**defaults, **fields})


def start_clock(schedule: Schedule, at: datetime) -> Schedule:
    """Set the next run where it would be on the simulated clock at `at`."""
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=next_run_after(schedule, at))
    schedule.refresh_from_db()
    return schedule


def tick(start: datetime, end: datetime, step: timedelta) -> int:
    """One scheduler ticking every `step` from `start` to `end`; returns the jobs enqueued."""
    enqueued, now = 0, start
    while now <= end:
        enqueued += run_due_schedules(now=now)
        now += step
    return enqueued


def planned_times(schedule: Schedule) -> list[str]:
    """The planned run time in each job's idempotency key, oldest first."""
    keys = (
        Job.objects.filter(schedule=schedule)
        .order_by("created_at")
        .values_list("idempotency_key", flat=True)
    )
    return [key.split(":", 2)[2] for key in keys]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


@pytest.fixture
def schedule_log() -> Iterator[Records]:
    """What jobs.services.schedules logs during the test."""
    logger, records = logging.getLogger("jobs.services.schedules"), Records()
    level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(records)
    logger.setLevel(level)


# --- Creating and editing ------------------------------------------------------------------------


def test_a_new_schedule_knows_its_next_run_at_once(tenant):
    before = timezone.now()

    schedule = make_schedule(tenant, cron="*/5 * * * *")

    assert schedule.next_run_at is not None
    assert before < schedule.next_run_at <= before + timedelta(minutes=5)
    assert schedule.next_run_at.minute % 5 == 0
    assert Schedule.objects.get(pk=schedule.pk).next_run_at == schedule.next_run_at


def test_editing_a_schedule_moves_its_next_run_at_once_and_the_next_tick_follows_it(tenant):
    schedule = make_schedule(tenant, cron="0 3 1 1 *")  # once a year
    before = timezone.now()

    edited = update_schedule(schedule, cron="* * * * *")
    moved = edited.next_run_at
    assert moved is not None
    enqueued = run_due_schedules(now=moved)

    assert before < moved <= before + timedelta(minutes=1)
    assert Schedule.objects.get(pk=schedule.pk).next_run_at == moved + timedelta(minutes=1)
    assert enqueued == 1


def test_a_run_that_was_due_before_an_edit_still_runs_at_the_next_tick(tenant):
    schedule = make_schedule(tenant)
    due = timezone.now() - timedelta(seconds=2)  # the scheduler has not reached it yet
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=due)

    edited = update_schedule(schedule, name="renamed", cron="0 3 1 1 *")
    enqueued = run_due_schedules()

    assert edited.next_run_at == due
    assert enqueued == 1
    assert Schedule.objects.get().next_run_at.month == 1  # type: ignore[union-attr]


def test_switching_to_an_interval_counts_it_from_the_moment_of_the_edit(tenant):
    schedule = make_schedule(tenant)
    before = timezone.now()

    edited = update_schedule(schedule, cron="", interval_seconds=600)

    assert edited.starts_at is not None
    assert edited.starts_at >= before
    assert edited.next_run_at == edited.starts_at + timedelta(seconds=600)


def test_disabling_clears_the_next_run_and_enabling_counts_it_from_now(tenant):
    schedule = make_schedule(tenant)

    disabled = disable_schedule(schedule)
    due_while_disabled = run_due_schedules(now=timezone.now() + timedelta(hours=1))
    enabled = enable_schedule(schedule)

    assert (disabled.enabled, disabled.next_run_at) == (False, None)
    assert due_while_disabled == 0
    assert enabled.enabled
    assert enabled.next_run_at is not None
    assert enabled.next_run_at > timezone.now() - timedelta(seconds=5)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"cron": "61 * * * *"}, "cron", "is not a valid cron expression"),
        ({"cron": "* * *"}, "cron", "a cron expression has five"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone", "Unknown time zone"),
        ({"cron": "", "interval_seconds": None}, "cron", "Give one trigger"),
        ({"interval_seconds": 60}, "interval_seconds", "Give only one trigger"),
        ({"run_at": T0 + timedelta(days=3650)}, "run_at", "Give only one trigger"),
        ({"kind": "jobs.sleep", "payload": {"seconds": -1}}, "payload", "seconds"),
        ({"kind": "nope.nothing"}, "kind", "No job kind is registered as 'nope.nothing'"),
        ({"payload": {"note": "a\x00b"}}, "payload", "cannot contain NUL"),
        ({"queue": "bogus"}, "queue", "the queues are"),
        ({"priority": "urgent"}, "priority", "not a valid choice"),
        ({"name": ""}, "name", "cannot be blank"),
        ({"overlap_policy": "sometimes"}, "overlap_policy", "not a valid choice"),
    ],
)
def test_invalid_schedules_are_refused_with_a_message_at_the_field(tenant, fields, field, message):
    with pytest.raises(ValidationError) as refused:
        make_schedule(tenant, **fields)

    assert message in str(refused.value.detail[field])
    assert not Schedule.objects.exists()


def test_a_one_off_in_the_past_and_an_end_before_the_start_are_refused(tenant):
    with pytest.raises(ValidationError) as past:
        make_schedule(tenant, cron="", run_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(ValidationError) as backwards:
        make_schedule(tenant, starts_at=T0, ends_at=T0 - timedelta(days=1))

    assert past.value.detail == {"run_at": ["Give a time in the future."]}
    assert backwards.value.detail == {"ends_at": ["The end must be after the start."]}


def test_a_name_is_unique_within_a_tenant_only(tenant, other_tenant):
    make_schedule(tenant, name="nightly")

    with pytest.raises(ValidationError, match="already has a schedule named 'nightly'"):
        make_schedule(tenant, name="nightly")
    elsewhere = make_schedule(other_tenant, name="nightly")

    assert elsewhere.tenant == other_tenant


def test_the_payload_is_validated_and_normalised_by_its_kind(tenant):
    schedule = make_schedule(tenant, kind="jobs.sleep", payload={"seconds": "1.5"})

    assert schedule.payload == {"seconds": 1.5, "steps": 10}


# --- The tick ------------------------------------------------------------------------------------


def test_a_due_run_is_enqueued_once_with_its_planned_time_in_its_key(tenant):
    schedule = start_clock(make_schedule(tenant, payload={"hello": "world"}), T0)
    planned = schedule.next_run_at
    assert planned is not None

    first = run_due_schedules(now=planned + timedelta(seconds=2))
    again = run_due_schedules(now=planned + timedelta(seconds=3))

    job = Job.objects.get()
    schedule.refresh_from_db()
    assert (first, again) == (1, 0)
    assert (job.schedule, job.kind, job.payload) == (schedule, "jobs.noop", {"hello": "world"})
    assert job.idempotency_key == f"schedule:{schedule.pk}:{planned.isoformat()}"
    assert job.status == Job.Status.QUEUED
    assert (schedule.run_count, schedule.last_job, schedule.last_run_at) == (
        1,
        job,
        planned + timedelta(seconds=2),
    )
    assert schedule.next_run_at == planned + timedelta(minutes=1)


def test_queue_and_priority_overrides_reach_the_job_and_blank_means_the_kinds(tenant):
    overridden = start_clock(
        make_schedule(tenant, name="urgent", queue="email", priority=Priority.HIGH), T0
    )
    plain = start_clock(make_schedule(tenant, name="plain"), T0)

    run_due_schedules(now=T0 + timedelta(minutes=1))

    first, second = Job.objects.get(schedule=overridden), Job.objects.get(schedule=plain)
    assert (first.queue, first.priority) == ("email", Priority.HIGH)
    assert (second.queue, second.priority) == ("default", Priority.NORMAL)


def test_overlap_skip_waits_while_the_previous_job_is_still_running(tenant, schedule_log):
    schedule = make_schedule(tenant, overlap_policy=Schedule.OverlapPolicy.SKIP)
    start_clock(schedule, T0)
    tick(T0, T0 + timedelta(minutes=1), timedelta(minutes=1))
    long_running = Job.objects.get()
    Job.objects.filter(pk=long_running.pk).update(status=Job.Status.STARTED)

    while_running = tick(T0 + timedelta(minutes=2), T0 + timedelta(minutes=4), timedelta(minutes=1))
    Job.objects.filter(pk=long_running.pk).update(status=Job.Status.SUCCEEDED)
    after_it_ended = tick(
        T0 + timedelta(minutes=5), T0 + timedelta(minutes=5), timedelta(minutes=1)
    )

    schedule.refresh_from_db()
    assert (while_running, after_it_ended) == (0, 1)
    assert schedule.run_count == 2
    assert schedule.next_run_at == T0 + timedelta(minutes=6)
    skipped = [line for line in schedule_log.lines if "previous job is still active" in line]
    assert len(skipped) == 3
    assert f"schedule={schedule.pk} tenant={tenant.pk}" in skipped[0]


def test_overlap_allow_runs_alongside_a_running_job(tenant):
    start_clock(make_schedule(tenant), T0)
    tick(T0, T0 + timedelta(minutes=1), timedelta(minutes=1))
    Job.objects.update(status=Job.Status.STARTED)

    enqueued = tick(T0 + timedelta(minutes=2), T0 + timedelta(minutes=3), timedelta(minutes=1))

    assert enqueued == 2


@pytest.mark.parametrize(
    ("policy", "jobs_after_outage"), [(Schedule.MissedRunPolicy.RUN_ONCE, 1), ("skip", 0)]
)
def test_after_a_three_hour_outage_the_missed_run_policy_decides(
    tenant, schedule_log, policy, jobs_after_outage
):
    schedule = start_clock(make_schedule(tenant, cron="*/10 * * * *", missed_run_policy=policy), T0)
    tick(T0, T0 + timedelta(minutes=10), timedelta(minutes=5))  # 12:10 ran; 12:20 is next
    back = T0 + timedelta(minutes=10, hours=3, seconds=7)  # no scheduler ran for three hours

    after_outage = run_due_schedules(now=back)
    schedule.refresh_from_db()
    next_run = schedule.next_run_at
    on_time_again = run_due_schedules(now=T0 + timedelta(hours=3, minutes=20))

    assert after_outage == jobs_after_outage
    assert next_run == T0 + timedelta(hours=3, minutes=20)  # the next one in the future
    assert on_time_again == 1
    assert Job.objects.count() == 2 + jobs_after_outage
    if policy == "skip":
        assert any("missed at 2026-06-01T12:20:00+00:00" in line for line in schedule_log.lines)
    else:
        assert "2026-06-01T12:20:00+00:00" in planned_times(schedule)


def test_a_schedule_whose_kind_is_not_registered_is_skipped_with_a_warning(tenant, schedule_log):
    # As a built-in schedule of a kind that arrives in a later release would be.
    orphan = Schedule.objects.create(
        tenant=tenant, name="orphan", kind="tests.not_registered", cron="* * * * *"
    )
    start_clock(orphan, T0)
    fine = start_clock(make_schedule(tenant), T0)

    enqueued = run_due_schedules(now=T0 + timedelta(minutes=1))

    orphan.refresh_from_db()
    assert enqueued == 1
    assert Job.objects.get().schedule == fine
    assert orphan.next_run_at == T0 + timedelta(minutes=2)
    warnings = [line for line in schedule_log.lines if line.startswith("WARNING")]
    assert len(warnings) == 1
    assert "No job kind is registered as 'tests.not_registered'" in warnings[0]


def test_an_inactive_tenants_schedule_is_skipped_with_a_warning(tenant, schedule_log):
    schedule = start_clock(make_schedule(tenant), T0)
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)

    enqueued = run_due_schedules(now=T0 + timedelta(minutes=1))

    schedule.refresh_from_db()
    assert enqueued == 0
    assert schedule.next_run_at == T0 + timedelta(minutes=2)
    assert any("inactive" in line for line in schedule_log.lines if line.startswith("WARNING"))


def test_a_one_off_schedule_runs_once_then_has_no_next_run(tenant):
    run_at = timezone.now() + timedelta(hours=1)
    schedule = make_schedule(tenant, cron="", run_at=run_at)

    ran = tick(run_at - timedelta(minutes=1), run_at + timedelta(minutes=3), timedelta(minutes=1))

    schedule.refresh_from_db()
    assert ran == 1
    assert schedule.next_run_at is None
    assert schedule.run_count == 1


@pytest.mark.parametrize(
    ("zone", "cron", "day", "expected_local"),
    [
        ("America/New_York", "30 2 * * *", "2026-03-08", ["03:00-04:00", "02:30-04:00"]),
        ("Europe/London", "30 1 * * *", "2026-03-29", ["02:00+01:00", "01:30+01:00"]),
        ("America/New_York", "30 1 * * *", "2026-11-01", ["01:30-04:00", "01:30-05:00"]),
        ("Europe/London", "30 1 * * *", "2026-10-25", ["01:30+01:00", "01:30+00:00"]),
    ],
)
def test_the_scheduler_runs_a_daily_schedule_once_on_a_dst_day_and_once_the_day_after(
    tenant, zone, cron, day, expected_local
):
    schedule = make_schedule(tenant, cron=cron, time_zone=zone)
    noon_before = datetime.fromisoformat(f"{day}T12:00").replace(tzinfo=ZoneInfo(zone))
    noon_before -= timedelta(days=1)
    start_clock(schedule, noon_before)

    tick(noon_before, noon_before + timedelta(days=2), timedelta(minutes=15))

    ran = [datetime.fromisoformat(planned) for planned in planned_times(schedule)]
    local = [moment.astimezone(ZoneInfo(zone)) for moment in ran]
    assert [moment.isoformat(timespec="minutes")[11:] for moment in local] == expected_local
    assert [moment.date() - local[0].date() for moment in local] == [timedelta(0), timedelta(1)]
    assert local[0].date().isoformat() == day


# --- Run now, delete, built-in schedules ----------------------------------------------------------


def test_run_now_enqueues_a_job_counted_as_a_run_and_leaves_the_planned_runs_alone(
    tenant, tenant_admin
):
    schedule = make_schedule(tenant, cron="0 3 1 1 *")
    planned = schedule.next_run_at

    job = run_schedule_now(schedule, by=tenant_admin)

    schedule.refresh_from_db()
    assert (job.schedule, job.created_by, job.status) == (schedule, tenant_admin, Job.Status.QUEUED)
    assert (schedule.run_count, schedule.last_job) == (1, job)
    assert schedule.next_run_at == planned


def test_run_now_of_a_kind_that_is_not_registered_is_a_domain_error(tenant):
    orphan = Schedule.objects.create(
        tenant=tenant, name="orphan", kind="tests.not_registered", cron="* * * * *"
    )

    with pytest.raises(ScheduleError, match="cannot run: No job kind is registered"):
        run_schedule_now(orphan)


def test_deleting_a_schedule_keeps_its_jobs_and_built_in_schedules_cannot_be_deleted(tenant):
    schedule = make_schedule(tenant)
    job = run_schedule_now(schedule)
    built_in = ensure_system_schedules()[0]

    delete_schedule(schedule)
    with pytest.raises(ScheduleError, match="is built in: disable it instead"):
        delete_schedule(built_in)

    job.refresh_from_db()
    assert job.schedule is None
    assert not Schedule.objects.filter(pk=schedule.pk).exists()
    assert Schedule.objects.filter(pk=built_in.pk).exists()


def test_built_in_schedules_are_created_once_in_an_active_system_tenant():
    first = ensure_system_schedules()
    again = ensure_system_schedules()

    system = Tenant.objects.get(slug=SYSTEM_TENANT_SLUG)
    assert system.is_active
    assert sorted(s.pk for s in first) == sorted(s.pk for s in again)
    assert {(s.kind, s.cron, s.time_zone) for s in first} == {
        ("jobs.reconcile_jobs", "* * * * *", "UTC"),
        ("jobs.clean_up_jobs", "0 3 * * *", "UTC"),
        ("reports.roll_up_analytics", "0 * * * *", "UTC"),
        ("workflows.reconcile_workflows", "* * * * *", "UTC"),
        ("alerts.send_digests", "0 7 * * *", "UTC"),
    }
    assert all(s.is_system and s.tenant == system and s.next_run_at for s in first)


def test_a_built_in_schedule_may_be_edited_and_disabled_but_keeps_its_kind():
    cleanup = next(s for s in ensure_system_schedules() if s.kind == "jobs.clean_up_jobs")

    moved = update_schedule(cleanup, cron="30 4 * * *")
    disabled = disable_schedule(cleanup)
    with pytest.raises(ValidationError, match="keeps its kind"):
        update_schedule(cleanup, kind="jobs.noop")

    assert moved.next_run_at is not None
    assert (moved.next_run_at.hour, moved.next_run_at.minute) == (4, 30)
    assert disabled.enabled is False


def test_the_run_scheduler_command_runs_one_tick_with_once(tenant):
    schedule = make_schedule(tenant)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now())
    out = StringIO()

    call_command("run_scheduler", "--once", stdout=out)

    assert out.getvalue().strip() == "enqueued 1 job(s)"
    assert Job.objects.get().schedule == schedule
    assert Schedule.objects.filter(is_system=True).count() == len(SYSTEM_SCHEDULES)
