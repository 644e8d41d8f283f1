"""Hourly roll-ups: equal to the raw aggregates, idempotent, backfilled, read by long stats."""

import random
from datetime import timedelta

from django.core.management import call_command
from django.db.models import Count, F, Max, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from jobs.models import Job, JobHourlyStat
from jobs.selectors.stats import Percentile, epoch, floor_hour, job_stats
from jobs.services.jobs import enqueue_job
from jobs.services.rollups import roll_up_jobs
from reports.models import MessageHourlyStat
from reports.rollups import roll_up_hours, roll_up_messages
from tests.reports.conftest import DAY_ONE, make_job, save_jobs

STATUSES = [Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELED, Job.Status.QUEUED]
KINDS = [("communications.send_email", "email"), ("communications.send_sms", "messaging")]


def generated_jobs(tenant, other_tenant, *, hours: int = 6, per_hour: int = 40) -> list[Job]:
    rng = random.Random(12)
    jobs = []
    for hour in range(hours):
        for _ in range(per_hour):
            kind, queue = rng.choice(KINDS)
            status = rng.choice(STATUSES)
            started = status in (Job.Status.SUCCEEDED, Job.Status.FAILED)
            jobs.append(
                make_job(
                    rng.choice([tenant, other_tenant]),
                    created=DAY_ONE + timedelta(hours=hour, seconds=rng.randrange(3600)),
                    kind=kind,
                    queue=queue,
                    status=status,
                    wait=round(rng.uniform(0, 30), 3) if started else None,
                    run=round(rng.uniform(0, 120), 3) if started else None,
                )
            )
    return save_jobs(jobs)


def raw_aggregates() -> dict[tuple, tuple]:
    wait = epoch(F("started_at") - F("enqueued_at"))
    run = epoch(F("finished_at") - F("started_at"))
    rows = (
        Job.objects.order_by()
        .annotate(hour=TruncHour("created_at"))
        .values("tenant_id", "hour", "queue", "kind", "status")
        .annotate(
            n=Count("pk"),
            wait_max=Max(wait),
            wait_p50=Percentile(wait, 0.5),
            run_sum=Sum(run),
            run_p95=Percentile(run, 0.95),
        )
    )
    return {
        (r["tenant_id"], r["hour"], r["queue"], r["kind"], r["status"]): (
            r["n"],
            _round(r["wait_max"]),
            _round(r["wait_p50"]),
            _round(r["run_sum"] or 0),
            _round(r["run_p95"]),
        )
        for r in rows
    }


def rolled_up() -> dict[tuple, tuple]:
    return {
        (s.tenant_id, s.hour, s.queue, s.kind, s.status): (
            s.count,
            _round(s.wait_max),
            _round(s.wait_p50),
            _round(s.run_sum),
            _round(s.run_p95),
        )
        for s in JobHourlyStat.objects.all()
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def test_job_roll_ups_equal_the_raw_aggregates_of_every_tenant_hour_queue_kind_and_status(
    tenant, other_tenant
):
    generated_jobs(tenant, other_tenant)

    written = roll_up_jobs(DAY_ONE, DAY_ONE + timedelta(hours=6))

    assert rolled_up() == raw_aggregates()
    assert written == JobHourlyStat.objects.count() > 20


def test_rolling_up_an_hour_again_changes_nothing(tenant, other_tenant):
    generated_jobs(tenant, other_tenant)
    roll_up_jobs(DAY_ONE, DAY_ONE + timedelta(hours=6))
    before = rolled_up()

    for hour in range(6):
        roll_up_jobs(DAY_ONE + timedelta(hours=hour))

    assert rolled_up() == before


def test_rolling_up_an_hour_again_follows_jobs_that_finished_since(tenant):
    (job,) = save_jobs([make_job(tenant, created=DAY_ONE, status=Job.Status.QUEUED, wait=None)])
    roll_up_jobs(DAY_ONE)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.SUCCEEDED,
        started_at=DAY_ONE + timedelta(seconds=5),
        finished_at=DAY_ONE + timedelta(seconds=7),
    )

    roll_up_jobs(DAY_ONE)

    (row,) = JobHourlyStat.objects.all()
    assert (row.status, row.count, row.wait_sum, row.run_max) == ("succeeded", 1, 5.0, 2.0)


def test_the_backfill_command_rolls_up_past_days_for_one_tenant(tenant, other_tenant, capsys):
    generated_jobs(tenant, other_tenant, hours=30, per_hour=4)

    call_command(
        "backfill_rollups", "--from", "2026-10-05", "--to", "2026-10-06", "--tenant", "acme"
    )

    assert set(JobHourlyStat.objects.values_list("tenant__slug", flat=True)) == {"acme"}
    assert (
        JobHourlyStat.objects.aggregate(n=Sum("count"))["n"]
        == Job.objects.filter(tenant=tenant).count()
    )
    assert "Rolled up 48 hours" in capsys.readouterr().out


def test_message_roll_ups_count_by_channel_and_status_with_send_latency(tenant):
    from communications.models import Message

    messages = [
        Message(tenant=tenant, channel="email", recipient="a@example.com", status="sent"),
        Message(tenant=tenant, channel="email", recipient="b@example.com", status="sent"),
        Message(tenant=tenant, channel="sms", recipient="+14155550123", status="failed"),
    ]
    Message.objects.bulk_create(messages)
    Message.objects.update(created_at=DAY_ONE + timedelta(minutes=5))
    Message.objects.filter(status="sent").update(sent_at=DAY_ONE + timedelta(minutes=5, seconds=3))

    roll_up_messages(DAY_ONE)
    roll_up_messages(DAY_ONE)

    rows = {
        (s.channel, s.status): (s.count, s.latency_sum) for s in MessageHourlyStat.objects.all()
    }
    assert rows == {("email", "sent"): (2, 6.0), ("sms", "failed"): (1, 0.0)}


def test_stats_over_a_long_window_read_roll_ups_and_agree_with_job_rows(tenant, other_tenant):
    now = timezone.now()
    old = [
        make_job(tenant, created=now - timedelta(days=3, hours=n), status=status)
        for n, status in enumerate([Job.Status.SUCCEEDED] * 5 + [Job.Status.FAILED] * 2)
    ]
    recent = [make_job(tenant, created=now - timedelta(minutes=10), status=Job.Status.FAILED)]
    save_jobs(old + recent)
    roll_up_hours(now - timedelta(days=8), floor_hour(now) + timedelta(hours=1))
    Job.objects.filter(pk__in=[job.pk for job in old]).delete()  # only the roll-ups remember them

    stats = job_stats(tenant=tenant, window=timedelta(days=7))

    assert (stats["counts"]["succeeded"], stats["counts"]["failed"]) == (5, 3)
    assert stats["failure_rate"] == round(3 / 8, 4)
    assert stats["by_kind"] == [
        {
            "kind": "communications.send_email",
            "total": 8,
            "succeeded": 5,
            "failed": 3,
            "failure_rate": 0.375,
        }
    ]
    assert stats["wait_seconds"] == {"p50": 1.0, "p95": 1.0}


def test_the_hourly_kind_rolls_up_every_tenant_since_its_last_run(tenant, other_tenant, work_until):
    now = timezone.now()
    save_jobs(
        [
            make_job(tenant, created=now - timedelta(hours=2)),
            make_job(other_tenant, created=now - timedelta(hours=3), status=Job.Status.FAILED),
        ]
    )

    job = enqueue_job(tenant=other_tenant, kind="reports.roll_up_analytics", payload={})
    work_until(lambda: Job.objects.get(pk=job.pk).is_finished, queues=["maintenance"])

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error_message
    counts = dict(
        JobHourlyStat.objects.exclude(kind="reports.roll_up_analytics")
        .values_list("tenant__slug")
        .annotate(n=Sum("count"))
    )
    assert counts == {"acme": 1, "globex": 1}
