"""Clean-up: old finished jobs and their logs go in bounded batches, each committed on its own;
old RQ records and stored files no row names go too; a dry run deletes nothing."""

import os
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from jobs.errors import InvalidTransition
from jobs.models import Job, JobLog
from jobs.services.cleanup import clean_up_files, clean_up_jobs
from jobs.services.jobs import cancel_job, enqueue_job
from jobs.transport import queueing
from reports.models import Report, ReportType
from tests.factories import TenantFactory


@pytest.fixture(autouse=True)
def private_media(settings, tmp_path: Path) -> Path:
    """Stored files of this test only: clean-up walks the whole media root."""
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _finished(tenant, *, days_ago: float, status: str = Job.Status.SUCCEEDED) -> Job:
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    Job.objects.filter(pk=job.pk).update(
        status=status, finished_at=timezone.now() - timedelta(days=days_ago)
    )
    return job


def _old_jobs(tenant, count: int, *, days_ago: float = 100, logs_each: int = 2) -> None:
    """`count` finished jobs with `logs_each` log lines each, written in bulk."""
    finished = timezone.now() - timedelta(days=days_ago)
    jobs = Job.objects.bulk_create(
        Job(tenant=tenant, kind="jobs.noop", queue="default", timeout=60, max_attempts=1,
            status=Job.Status.SUCCEEDED, finished_at=finished + timedelta(microseconds=n % 7))
        for n in range(count)
    )  # fmt: skip
    JobLog.objects.bulk_create(
        JobLog(job=job, tenant=tenant, event=JobLog.Event.SUCCEEDED, message="Succeeded.")
        for job in jobs
        for _ in range(logs_each)
    )


def _rows_seen_from_another_connection() -> int:
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
    ) as other:
        return int(other.execute("SELECT count(*) FROM jobs_job").fetchone()[0])  # type: ignore[index]


def test_a_large_clean_up_goes_in_bounded_batches_each_committed_on_its_own(tenant):
    _old_jobs(tenant, 2500)
    recent = _finished(tenant, days_ago=1)
    seen: list[tuple[int, int, int]] = []

    def progress(done: int, total: int) -> None:  # between batches, outside any transaction
        assert not connection.in_atomic_block
        seen.append((done, total, _rows_seen_from_another_connection()))

    outcome = clean_up_jobs(batch_size=1000, progress=progress)

    assert (outcome.jobs, outcome.logs, outcome.batches) == (2500, 5000, 3)
    assert seen == [(1000, 2500, 1501), (2000, 2500, 501), (2500, 2500, 1)]
    assert 0 < outcome.longest_batch_seconds < 5
    assert list(Job.objects.values_list("pk", flat=True)) == [recent.pk]
    assert JobLog.objects.filter(job=recent).exists()


def test_the_command_shows_progress_and_a_summary_and_honours_the_batch_size(
    tenant, capsys, settings
):
    _old_jobs(tenant, 25, logs_each=1)
    settings.CONVEYOR_CLEANUP_BATCH_SIZE = 10

    call_command("cleanup_jobs")
    default_size = capsys.readouterr()
    _old_jobs(tenant, 25, logs_each=1)
    call_command("cleanup_jobs", "--batch-size", "5")
    given_size = capsys.readouterr()

    assert "Deleted 25 job(s) and 25 log line(s) in 3 batch(es), the longest" in default_size.out
    assert f"  {tenant.slug}: 25" in default_size.out
    assert default_size.err.splitlines() == [
        "  40% (10 of 25 jobs deleted)",
        "  80% (20 of 25 jobs deleted)",
        "  100% (25 of 25 jobs deleted)",
    ]
    assert "in 5 batch(es)" in given_size.out
    with pytest.raises(CommandError, match="1 or more"):
        call_command("cleanup_jobs", "--batch-size", "0")


def test_clean_up_deletes_finished_jobs_and_logs_past_each_tenants_retention(tenant):
    short, long = TenantFactory.create(retention_days=7), TenantFactory.create(retention_days=200)
    old, recent = _finished(tenant, days_ago=100), _finished(tenant, days_ago=10)
    short_old, long_kept = _finished(short, days_ago=8), _finished(long, days_ago=150)
    long_old = _finished(long, days_ago=201)
    waiting = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    Job.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(days=200))

    outcome = clean_up_jobs(batch_size=1)

    assert (outcome.jobs, outcome.logs) == (3, 3)
    assert outcome.per_tenant == {tenant.slug: 1, short.slug: 1, long.slug: 1}
    remaining = set(Job.objects.values_list("pk", flat=True))
    assert remaining == {recent.pk, long_kept.pk, waiting.pk}
    assert not JobLog.objects.filter(job_id__in=[old.pk, short_old.pk, long_old.pk]).exists()


def test_clean_up_dry_run_counts_without_deleting_and_refuses_active_statuses(tenant):
    _finished(tenant, days_ago=100, status=Job.Status.FAILED)

    outcome = clean_up_jobs(dry_run=True)

    assert (outcome.jobs, outcome.logs, outcome.per_tenant) == (1, 1, {tenant.slug: 1})
    assert Job.objects.count() == 1
    with pytest.raises(InvalidTransition, match="not queued"):
        clean_up_jobs(statuses=["queued"])


def test_the_cleanup_command_takes_its_options_and_explains_bad_ones(tenant, capsys):
    other = TenantFactory.create()
    _finished(tenant, days_ago=3)
    _finished(tenant, days_ago=3, status=Job.Status.FAILED)
    _finished(tenant, days_ago=1, status=Job.Status.FAILED)
    _finished(other, days_ago=3, status=Job.Status.FAILED)

    call_command("cleanup_jobs", "--older-than", "2", "--tenant", tenant.slug, "--status", "failed")

    assert "Deleted 1 job(s)" in capsys.readouterr().out
    assert Job.objects.count() == 3
    assert Job.objects.filter(tenant=other).count() == 1
    with pytest.raises(CommandError, match="No tenant"):
        call_command("cleanup_jobs", "--tenant", "ghost")
    with pytest.raises(CommandError, match="0 or more"):
        call_command("cleanup_jobs", "--older-than", "-1")


def test_a_dry_run_of_the_command_deletes_nothing(tenant, capsys, private_media):
    _finished(tenant, days_ago=100)
    orphan = _stored("exports/1/gone.csv", hours_old=2)

    call_command("cleanup_jobs", "--dry-run")

    out = capsys.readouterr().out
    assert "Would delete 1 job(s), 1 log line(s) and 1 stored file(s)." in out
    assert "  file exports/1/gone.csv" in out
    assert Job.objects.count() == 1
    assert default_storage.exists(orphan)


def _stored(name: str, *, hours_old: float) -> str:
    saved = default_storage.save(name, ContentFile(b"data"))
    stamp = time.time() - hours_old * 3600
    os.utime(default_storage.path(saved), (stamp, stamp))
    return saved


def test_stored_files_no_row_names_are_removed_once_old_enough(tenant, private_media):
    kept = _stored(f"reports/{tenant.pk}/r1/activity.csv", hours_old=5)
    Report.objects.create(tenant=tenant, type=ReportType.JOB_ACTIVITY, format="csv", file=kept)
    orphan_report = _stored(f"reports/{tenant.pk}/r2/activity.pdf", hours_old=5)
    orphan_upload = _stored(f"imports/{tenant.pk}/i1.csv", hours_old=2)
    just_written = _stored(f"exports/{tenant.pk}/e1.csv", hours_old=0.1)
    elsewhere = _stored("avatars/a.png", hours_old=5)

    planned = clean_up_files(dry_run=True)
    everything_still_there = all(
        default_storage.exists(name)
        for name in (kept, orphan_report, orphan_upload, just_written, elsewhere)
    )
    removed = clean_up_files()

    assert sorted(planned) == sorted([orphan_report, orphan_upload])
    assert everything_still_there
    assert sorted(removed) == sorted(planned)
    assert not default_storage.exists(orphan_report)
    assert not default_storage.exists(orphan_upload)
    assert all(default_storage.exists(name) for name in (kept, just_written, elsewhere))


def test_a_tenant_clean_up_leaves_files_and_rq_records_alone(tenant, private_media):
    orphan = _stored("reports/9/gone.pdf", hours_old=5)

    outcome = clean_up_jobs(tenant=tenant)

    assert (outcome.files, outcome.rq_records) == ([], 0)
    assert default_storage.exists(orphan)


def test_old_finished_failed_and_canceled_rq_records_are_dropped(tenant, run_worker, settings):
    done = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    canceled = enqueue_job(tenant=tenant, kind="tests.email_noop", payload={})
    cancel_job(canceled)
    run_worker(["default"])
    assert queueing.rq_state(done) is not None
    settings.CONVEYOR_RESULT_TTL = 0
    time.sleep(1)

    outcome = clean_up_jobs()

    assert outcome.rq_records >= 1
    assert queueing.rq_state(done) is None
    assert queueing.rq_state(canceled) is None
