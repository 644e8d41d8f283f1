"""What operators watch: the Prometheus endpoint (read by prometheus_client's own parser after
real jobs ran) and the job fields on every log line."""

import json
import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from jobs.log_context import JsonFormatter, PlainFormatter
from jobs.models import Job
from jobs.services.jobs import cancel_job, enqueue_job, enqueue_jobs
from tests.jobs.conftest import status_of


def _samples(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_count_outcomes_retries_and_timings_by_queue_and_kind(tenant, client, work_until):
    noops = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 3)
    flaky = enqueue_job(tenant=tenant, kind="jobs.fail", payload={"times": 1})
    broken = enqueue_job(tenant=tenant, kind="jobs.fail", payload={"permanent": True})
    canceled = enqueue_job(tenant=tenant, kind="tests.email_noop", payload={})
    cancel_job(canceled)
    ran = [*noops, flaky, broken]

    work_until(lambda: all(status_of(job) in Job.FINISHED for job in ran))
    samples = _samples(client)

    noop = {"queue": "default", "kind": "jobs.noop"}
    fail = {"queue": "default", "kind": "jobs.fail"}
    email = {"queue": "email", "kind": "tests.email_noop"}
    assert _value(samples, "conveyor_jobs_enqueued_total", **noop) == 3
    assert _value(samples, "conveyor_jobs_succeeded_total", **noop) == 3
    assert _value(samples, "conveyor_jobs_enqueued_total", **fail) == 2
    assert _value(samples, "conveyor_jobs_succeeded_total", **fail) == 1
    assert _value(samples, "conveyor_jobs_failed_total", **fail) == 1
    assert _value(samples, "conveyor_jobs_retried_total", **fail) == 1
    assert _value(samples, "conveyor_jobs_canceled_total", **email) == 1
    assert _value(samples, "conveyor_jobs_retried_total", **noop) == 0
    assert _value(samples, "conveyor_job_wait_seconds_count", **noop) == 3
    assert _value(samples, "conveyor_job_run_seconds_count", **fail) == 2
    assert _value(samples, "conveyor_job_run_seconds_bucket", **noop, le="+Inf") == 3
    assert _value(samples, "conveyor_job_wait_seconds_count", **email) == 0


def test_histogram_buckets_place_each_job_by_its_wait_and_run(tenant, client):
    jobs = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 2)
    now = timezone.now()
    for job, (waited, ran) in zip(jobs, [(0.2, 3), (20, 100)], strict=True):
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.SUCCEEDED,
            enqueued_at=now - timedelta(seconds=waited + ran),
            started_at=now - timedelta(seconds=ran),
            finished_at=now,
        )

    samples = _samples(client)

    noop = {"queue": "default", "kind": "jobs.noop"}
    assert _value(samples, "conveyor_job_wait_seconds_bucket", **noop, le="0.25") == 1
    assert _value(samples, "conveyor_job_wait_seconds_bucket", **noop, le="30.0") == 2
    assert _value(samples, "conveyor_job_run_seconds_bucket", **noop, le="5.0") == 1
    assert _value(samples, "conveyor_job_run_seconds_bucket", **noop, le="60.0") == 1
    assert _value(samples, "conveyor_job_run_seconds_bucket", **noop, le="300.0") == 2
    assert _value(samples, "conveyor_job_run_seconds_sum", **noop) == 103


def test_queue_gauges_show_waiting_jobs_by_priority(tenant, client):
    enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, priority="high")
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 2)

    samples = _samples(client)

    def waiting(priority: str) -> float:
        labels = {"queue": "default", "priority": priority}
        return _value(samples, "conveyor_queue_waiting_jobs", **labels)

    assert (waiting("critical"), waiting("high"), waiting("normal"), waiting("low")) == (0, 1, 2, 0)
    assert _value(samples, "conveyor_queue_jobs", queue="default", state="waiting") == 3
    assert _value(samples, "conveyor_queue_max_wait_seconds", queue="default") == 300
    assert _value(samples, "conveyor_workers") == 0


def _ended(jobs: list[Job], *, ago: timedelta) -> None:
    moment = timezone.now() - ago
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(
        status=Job.Status.SUCCEEDED,
        created_at=moment,
        enqueued_at=moment,
        started_at=moment,
        finished_at=moment,
    )


def test_counters_read_recent_rows_only_and_stay_put_when_clean_up_deletes_them(tenant, client):
    ancient = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 2)
    recent = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 3)
    _ended(ancient, ago=timedelta(days=2))  # before counting began: never read
    _ended(recent, ago=timedelta(minutes=5))

    first, again = _samples(client), _samples(client)
    Job.objects.all().delete()  # as clean-up does, past retention
    after_clean_up = _samples(client)
    fresh = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    _ended([fresh], ago=timedelta(seconds=1))
    later = _samples(client)

    noop = {"queue": "default", "kind": "jobs.noop"}
    assert _value(first, "conveyor_jobs_succeeded_total", **noop) == 3
    assert _value(again, "conveyor_jobs_succeeded_total", **noop) == 3
    assert _value(after_clean_up, "conveyor_jobs_succeeded_total", **noop) == 3
    assert _value(after_clean_up, "conveyor_jobs_enqueued_total", **noop) == 3
    assert _value(later, "conveyor_jobs_succeeded_total", **noop) == 4
    assert _value(later, "conveyor_job_run_seconds_count", **noop) == 4


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.plain = PlainFormatter()
        self.json = JsonFormatter()
        self.lines: list[tuple[str, dict]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((self.plain.format(record), json.loads(self.json.format(record))))


@pytest.fixture
def log_lines() -> Iterator[list[tuple[str, dict]]]:
    handler = _Lines()
    loggers = [logging.getLogger(name) for name in ("jobs.runtime.runner", "tests.jobs.kinds")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    yield handler.lines
    for log, level in zip(loggers, levels, strict=True):
        log.removeHandler(handler)
        log.setLevel(level)


def test_every_line_a_job_logs_carries_its_id_kind_tenant_and_attempt(
    tenant, work_until, log_lines
):
    job = enqueue_job(tenant=tenant, kind="tests.log_and_retry", payload={})

    work_until(lambda: status_of(job) == Job.Status.SUCCEEDED)

    own = [entry for _, entry in log_lines if entry["message"] == "working on it"]
    assert [entry["attempt"] for entry in own] == ["1", "2"]
    assert {entry["logger"] for entry in own} == {"tests.jobs.kinds"}
    tags = {(e["job_id"], e["kind"], e["tenant"]) for _, e in log_lines if e["attempt"] != "-"}
    assert tags == {(str(job.pk), "tests.log_and_retry", tenant.slug)}
    assert {e["attempt"] for _, e in log_lines} <= {"1", "2", "-"}
    plain = [line for line, entry in log_lines if entry["message"] == "working on it"]
    assert len(plain) == 2
    assert f"job={job.pk} kind=tests.log_and_retry tenant={tenant.slug} attempt=2 " in plain[1]


def test_a_line_logged_outside_a_job_shows_no_job_fields_and_takes_rqs_extra_fields():
    handler = _Lines()
    rq_log = logging.getLogger("rq.worker")
    rq_log.addHandler(handler)
    try:
        rq_log.error("job failed", extra={"job_id": "rq-job-1", "queue": "default"})
    finally:
        rq_log.removeHandler(handler)

    [(plain, entry)] = handler.lines
    assert plain.endswith(" ERROR rq.worker job=rq-job-1 job failed")
    assert (entry["job_id"], entry["kind"]) == ("rq-job-1", "-")


# --- Naming conventions -------------------------------------------------------------------------

BASE_UNITS = ("seconds", "bytes", "ratio", "total", "info")
NOT_BASE = ("milliseconds", "minutes", "hours", "per_minute", "per_second", "percent", "kb", "mb")
NAME = re.compile(r"^conveyor_[a-z][a-z0-9_]*$")
LABEL = re.compile(r"^[a-z][a-z0-9_]*$")


def _families(text: str) -> list[Any]:
    return list(text_string_to_metric_families(text))


def test_every_metric_follows_prometheus_naming_rules(tenant, client, work_until):
    flaky = enqueue_job(tenant=tenant, kind="jobs.fail", payload={"times": 1})
    work_until(lambda: status_of(flaky) == Job.Status.SUCCEEDED)

    text = client.get("/metrics").text

    declared = re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE)
    helped = set(re.findall(r"^# HELP (\S+) \S", text, flags=re.MULTILINE))
    assert len(declared) == len({name for name, _ in declared}), "a family is split or repeated"
    for name, kind in declared:
        assert name in helped, f"{name} has no HELP"
        assert NAME.match(name), name
        assert not any(part in name for part in NOT_BASE), f"{name}: use base units"
        assert name.endswith("_total") == (kind == "counter"), f"{name}: _total is for counters"
        if kind == "histogram":
            assert name.endswith("_seconds") or name.endswith("_bytes"), name
    for sample_line in re.findall(r"^(conveyor_\w+)", text, flags=re.MULTILINE):
        family = next((n for n, _ in declared if sample_line.startswith(n)), None)
        assert family is not None, f"{sample_line} has no TYPE"
    for family in _families(text):
        for sample in family.samples:
            assert all(LABEL.match(label) for label in sample.labels), sample


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_promtool_finds_nothing_to_complain_about(tenant, client, work_until):
    flaky = enqueue_job(tenant=tenant, kind="jobs.fail", payload={"times": 1})
    work_until(lambda: status_of(flaky) == Job.Status.SUCCEEDED)
    text = client.get("/metrics").text

    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""


PROMETHEUS_DOCS = Path(settings.BASE_DIR) / "docs" / "prometheus"


def _names_in(text: str) -> set[str]:
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in re.findall(r"conveyor_\w+", text)}


def test_the_dashboard_and_alert_rules_use_only_metrics_the_endpoint_serves(
    tenant, client, work_until
):
    flaky = enqueue_job(tenant=tenant, kind="jobs.fail", payload={"times": 1})
    work_until(lambda: status_of(flaky) == Job.Status.SUCCEEDED)
    served = set(re.findall(r"^# TYPE (\S+) ", client.get("/metrics").text, flags=re.MULTILINE))

    dashboard = json.loads((PROMETHEUS_DOCS / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = (PROMETHEUS_DOCS / "alerts.yml").read_text()

    assert _names_in("\n".join(exprs)) <= served
    assert _names_in(rules) <= served
    assert {"conveyor_health_check_status", "conveyor_jobs_failed_total"} <= _names_in(rules)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_the_example_alert_rules_are_valid_and_fire_on_their_reasons():
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts-test.yml"]):
        checked = subprocess.run(
            ["promtool", *command],
            cwd=PROMETHEUS_DOCS,
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
