"""Fair dispatch across tenants, with real workers: rotation, weights, holds set aside."""

import pytest

from jobs.models import Job, JobLog
from jobs.services.jobs import enqueue_job, enqueue_jobs
from jobs.transport import queueing
from tenants.services import set_dispatch
from tests.factories import TenantFactory
from tests.jobs.conftest import status_of, wait_for


def _start_order(jobs: list[Job]) -> list[Job]:
    rows = Job.objects.filter(pk__in=[job.pk for job in jobs]).exclude(started_at=None)
    return list(rows.order_by("started_at"))


def test_tenants_take_turns_fifo_within_each(tenant, other_tenant, run_worker):
    third = TenantFactory.create()
    a = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{"n": i} for i in range(4)])
    b = enqueue_jobs(tenant=other_tenant, kind="jobs.noop", payloads=[{"n": i} for i in range(3)])
    c = enqueue_job(tenant=third, kind="jobs.noop", payload={"n": 0})

    run_worker(["default"])

    order = [(job.tenant_id, job.payload["n"]) for job in _start_order([*a, *b, c])]
    ta, tb, tc = tenant.pk, other_tenant.pk, third.pk
    assert order == [(ta, 0), (tb, 0), (tc, 0), (ta, 1), (tb, 1), (ta, 2), (tb, 2), (ta, 3)]


def test_a_higher_priority_runs_before_every_tenants_lower_one(tenant, other_tenant, run_worker):
    low = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 3, priority="low")
    high = enqueue_job(tenant=other_tenant, kind="jobs.noop", payload={}, priority="high")

    run_worker(["default"])

    assert _start_order([*low, high])[0].pk == high.pk


def test_weights_split_throughput_in_proportion(tenant, other_tenant, run_worker):
    set_dispatch(tenant, weight=3)
    heavy = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 200)
    light = enqueue_jobs(tenant=other_tenant, kind="jobs.noop", payloads=[{}] * 200)

    run_worker(["default"], max_jobs=200)

    started = _start_order([*heavy, *light])
    share = sum(1 for job in started if job.tenant_id == tenant.pk) / len(started)
    assert len(started) == 200
    assert share == pytest.approx(0.75, rel=0.1)


def test_a_tenant_held_by_its_rate_limit_does_not_delay_another(
    tenant, other_tenant, worker_process
):
    limited = enqueue_jobs(tenant=tenant, kind="tests.rate_limited", payloads=[{}] * 300)
    worker_process("default")
    wait_for(lambda: status_of(limited[3]) == Job.Status.SUCCEEDED, timeout=60)  # worker start

    other = enqueue_job(tenant=other_tenant, kind="jobs.noop", payload={})
    wait_for(lambda: status_of(other) == Job.Status.SUCCEEDED, timeout=10)

    other.refresh_from_db()
    assert other.started_at
    assert other.enqueued_at
    assert (other.started_at - other.enqueued_at).total_seconds() < 1.0
    done = Job.objects.filter(pk__in=[j.pk for j in limited], status="succeeded")
    assert set(done.values_list("attempt", flat=True)) == {1}
    assert not JobLog.objects.filter(event=JobLog.Event.REQUEUED).exists()
    waiting = queueing.queue_counts("default")["waiting"]
    assert 0 < waiting < 300  # RQ's own count still shows the held tenant's backlog


def test_another_tenants_job_starts_within_a_job_of_a_backlog_of_thousands(
    tenant, other_tenant, worker_process
):
    backlog = enqueue_jobs(
        tenant=tenant, kind="jobs.sleep", payloads=[{"seconds": 0.01, "steps": 1}] * 3000
    )
    worker_process("default")
    wait_for(lambda: status_of(backlog[5]) == Job.Status.SUCCEEDED, timeout=60)  # worker start

    other = enqueue_job(tenant=other_tenant, kind="jobs.noop", payload={})
    wait_for(lambda: status_of(other) == Job.Status.SUCCEEDED, timeout=10)

    other.refresh_from_db()
    assert other.started_at
    assert other.enqueued_at
    ahead = Job.objects.filter(
        tenant=tenant, started_at__gt=other.enqueued_at, started_at__lt=other.started_at
    ).count()
    assert ahead <= 2  # the one running when it came, and at most one more
    assert (other.started_at - other.enqueued_at).total_seconds() < 0.5
    assert Job.objects.filter(tenant=tenant, status="queued").count() > 2000


def test_a_concurrency_hold_sets_jobs_aside_until_a_slot_frees(tenant, worker_process):
    jobs = enqueue_jobs(tenant=tenant, kind="tests.two_at_once", payloads=[{"seconds": 0.3}] * 6)
    for _ in range(3):
        worker_process("default")

    wait_for(
        lambda: (
            not Job.objects.filter(pk__in=[j.pk for j in jobs]).exclude(status="succeeded").exists()
        ),
        timeout=30,
    )

    rows = Job.objects.filter(pk__in=[j.pk for j in jobs])
    first = min(row.started_at for row in rows if row.started_at)
    last = max(row.finished_at for row in rows if row.finished_at)
    assert (last - first).total_seconds() < 2.5  # three pairs of 0.3 s: freed slots pass on
    assert set(Job.objects.values_list("attempt", flat=True)) == {1}
    assert not JobLog.objects.filter(event=JobLog.Event.REQUEUED).exists()


def test_forking_workers_take_in_rotation_and_set_held_jobs_aside(
    tenant, other_tenant, worker_process
):
    held = enqueue_jobs(tenant=tenant, kind="tests.two_at_once", payloads=[{"seconds": 0.3}] * 6)
    other = enqueue_job(tenant=other_tenant, kind="jobs.noop", payload={})
    for _ in range(3):
        worker_process("default", worker_class="jobs.runtime.worker.Worker")

    wait_for(
        lambda: (
            not Job.objects.filter(pk__in=[j.pk for j in [*held, other]])
            .exclude(status="succeeded")
            .exists()
        ),
        timeout=60,
    )

    rows = Job.objects.filter(pk__in=[j.pk for j in held]).values_list("started_at", "finished_at")
    spans = [(start, end) for start, end in rows if start and end]
    moments = sorted({start for start, _ in spans} | {end for _, end in spans})
    busiest = max(sum(1 for start, end in spans if start <= moment < end) for moment in moments)
    assert busiest <= 2
    assert set(Job.objects.values_list("attempt", flat=True)) == {1}
    assert not JobLog.objects.filter(event=JobLog.Event.REQUEUED).exists()
    assert _start_order([*held, other]).index(Job.objects.get(pk=other.pk)) <= 3
