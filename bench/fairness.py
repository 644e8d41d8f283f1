"""Fair dispatch across tenants: another tenant's wait behind a backlog, and what fairness costs.

- *Wait behind a backlog*: tenant `bench` enqueues 10,000 no-ops (`--quick`: 3,000) while the
  tracked workers (1, then 3 processes) are idle; tenant `bench-b` then enqueues one no-op every
  20 ms, 50 of them (`--quick`: 25), while the backlog drains. The figure is the p95 of their
  waits (row `started_at` − `enqueued_at`); the baseline is the same tenant's p95 on idle
  workers with no backlog, measured in the same run.
- *Cost*: 2,000 no-ops (`--quick`: 500) of one tenant drained, against 2,000 spread over 20
  tenants (every take moves to the next tenant); jobs per second, first start to last end.
"""

import time

from django.db.models import Max, Min

from bench.engine import Sizes, Workers, forget_jobs, percentiles, wait_until
from bench.table import Figure
from jobs.models import Job
from jobs.services.jobs import enqueue_job, enqueue_jobs
from jobs.transport import queueing
from tenants.models import Tenant

SPREAD_TENANTS = 20


def _tenant(slug: str) -> Tenant:
    tenant, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": slug})
    return tenant


def _forget(tenants: list[Tenant]) -> None:
    for tenant in tenants:
        forget_jobs(tenant)


def _waits(tenant: Tenant, *, samples: int, every: float) -> list[float]:
    """Enqueue `samples` jobs `every` seconds apart; their waits in ms once all started."""
    jobs = []
    for _ in range(samples):
        jobs.append(enqueue_job(tenant=tenant, kind="jobs.noop", payload={}))
        time.sleep(every)
    started = Job.objects.filter(pk__in=[job.pk for job in jobs]).exclude(started_at=None)
    wait_until(lambda: started.count() == samples, timeout=120, every=0.05)
    rows = started.values_list("enqueued_at", "started_at")
    return [
        (start - enqueued).total_seconds() * 1000 for enqueued, start in rows if enqueued and start
    ]


def _behind_backlog(workers: int, *, rounds: int, backlog: int, samples: int) -> Figure:
    big, other = _tenant("bench"), _tenant("bench-b")
    found: dict[str, list[float]] = {"backlog": [], "idle": []}
    for _ in range(rounds):
        found["idle"].append(percentiles(_waits(other, samples=samples, every=0.02))["p95"])
        _forget([other])
        enqueue_jobs(tenant=big, kind="jobs.noop", payloads=[{}] * backlog)
        found["backlog"].append(percentiles(_waits(other, samples=samples, every=0.02))["p95"])
        _drained(big, timeout=120 + backlog / 20)
        _forget([big, other])
    return Figure(
        f"another tenant's wait p95 behind a {backlog:,}-job backlog, {workers} worker(s)",
        "ms",
        found["backlog"],
        "the same, no backlog",
        found["idle"],
        higher_is_better=False,
    )


def _drained(tenant: Tenant, *, timeout: float) -> None:
    left = Job.objects.filter(tenant=tenant).exclude(status=Job.Status.SUCCEEDED)
    wait_until(lambda: not left.exists(), timeout=timeout, every=0.2)


def _drain(tenants: list[Tenant], jobs: int) -> float:
    share = jobs // len(tenants)
    for tenant in tenants:  # each tenant's jobs together; the rotation interleaves the takes
        enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * share)
    done = Job.objects.filter(tenant__in=tenants, status=Job.Status.SUCCEEDED)
    wait_until(lambda: done.count() >= share * len(tenants), timeout=60 + jobs / 10, every=0.2)
    span = done.aggregate(first=Min("started_at"), last=Max("finished_at"))
    _forget(tenants)
    return share * len(tenants) / (span["last"] - span["first"]).total_seconds()


def _cost(*, rounds: int, jobs: int) -> Figure:
    alone = [_tenant("bench")]
    spread = [_tenant(f"bench-{i}") for i in range(SPREAD_TENANTS)]
    found: dict[str, list[float]] = {"alone": [], "spread": []}
    for _ in range(rounds):
        found["alone"].append(_drain(alone, jobs))
        found["spread"].append(_drain(spread, jobs))
    return Figure(
        f"no-op throughput, {jobs:,} jobs over {SPREAD_TENANTS} tenants in rotation, 1 process",
        "jobs/s",
        found["spread"],
        "one tenant alone",
        found["alone"],
        target="≥ 0.9×",
    )


def measure_fairness(*, rounds: int, quick: bool) -> list[Figure]:
    sizes = Sizes.for_run(quick=quick)
    backlog, samples = (3_000, 25) if quick else (10_000, 50)
    queueing.connection().flushdb()
    figures: list[Figure] = []
    for count in (1, 3):
        workers = Workers("tracked", count)
        workers.start()
        try:
            figures.append(_behind_backlog(count, rounds=rounds, backlog=backlog, samples=samples))
            if count == 1:
                figures.append(_cost(rounds=rounds, jobs=sizes.throughput_jobs))
        finally:
            workers.stop()
        queueing.connection().flushdb()
    return figures
