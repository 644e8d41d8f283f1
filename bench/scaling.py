"""How tracked throughput grows with worker processes, and what one job costs the servers.

Tracked no-ops are drained by 1, 2 and 4 `manage.py rqworker default` processes of the
one-at-a-time `FastWorker`, and by one `ConcurrentWorker` process running 1 and 10 at once; each
figure is a ratio to one FastWorker process in the same run. From the drains by one FastWorker
and by the ConcurrentWorker × 10 come the per-job costs a deployment is sized with
(docs/capacity.md): Redis commands (`INFO commandstats`: everything
the enqueue, the workers and their heartbeats sent while the jobs ran, a script's own calls
included) and the Redis server's CPU time (`INFO cpu`); PostgreSQL transactions, rows written
and statement time (`pg_stat_database` of the bench database). Redis figures are server-wide:
run with a Redis of the bench's own (leave REDIS_URL unset: the embedded one) for exact ones.
"""

import time
from collections.abc import Callable

from django.db import connection

from bench.engine import Sizes, Workers, bench_tenant, forget_jobs, tracked_drain
from bench.table import Figure
from jobs.transport import queueing

PROCESSES = (1, 2, 4)
FAST = "jobs.runtime.worker.FastWorker"
CONCURRENT = "jobs.runtime.worker.ConcurrentWorker"
SLOTS = (1, 10)  # one ConcurrentWorker process running this many at once


def measure_scaling(*, rounds: int, sizes: Sizes) -> list[Figure]:
    tenant = bench_tenant()
    forget_jobs(tenant)
    queueing.connection().flushdb()
    setups: list[tuple[str, str, int, int | None]] = [
        (f"{n} FastWorker process{'es' if n > 1 else ''}", FAST, n, None) for n in PROCESSES
    ]
    setups += [(f"1 ConcurrentWorker process × {n}", CONCURRENT, 1, n) for n in SLOTS]
    rates: dict[str, list[float]] = {}
    costs: dict[str, list[dict[str, float]]] = {}
    for label, worker_class, count, slots in setups:
        workers = Workers("tracked", count, worker_class=worker_class, concurrency=slots)
        workers.start()
        try:
            measured = [
                _costs(lambda: tracked_drain(tenant, sizes.throughput_jobs)) for _ in range(rounds)
            ]
        finally:
            workers.stop()
        queueing.connection().flushdb()
        rates[label] = [cost["rate"] for cost in measured]
        costs[label] = measured
    one = setups[0][0]
    figures = [
        Figure(f"tracked no-op throughput, {label}", "jobs/s", values, *_beside(label, one, rates))
        for label, values in rates.items()
    ]
    for label in (one, setups[-1][0]):
        figures += _per_job(label, costs[label], sizes.throughput_jobs)
    return figures


def _beside(label: str, one: str, rates: dict[str, list[float]]) -> tuple[str, list[float]]:
    return ("", []) if label == one else (one, rates[one])


def _per_job(label: str, costs: list[dict[str, float]], jobs: int) -> list[Figure]:
    units = {
        "redis": ("Redis commands per job (inside scripts too)", "commands"),
        "redis_us": ("Redis CPU time per job", "µs"),
        "transactions": ("PostgreSQL transactions per job", "transactions"),
        "rows": ("PostgreSQL rows written per job", "rows"),
        "pg_ms": ("PostgreSQL statement time per job", "ms"),
    }
    return [
        Figure(
            f"{name}, {label}", unit, [cost[key] / jobs for cost in costs], higher_is_better=False
        )
        for key, (name, unit) in units.items()
    ]


def _costs(drain: Callable[[], float]) -> dict[str, float]:
    """What one drain cost the servers, beside its rate."""
    before = {**_redis_counts(), **_pg_counts()}
    rate = drain()
    time.sleep(1.5)  # backends report their statistics within a second of going idle
    after = {**_redis_counts(), **_pg_counts()}
    return {"rate": rate, **{key: after[key] - before[key] for key in after}}


def _redis_counts() -> dict[str, float]:
    """Commands Redis ran (a script's own calls included) and the server's CPU time (µs)."""
    redis = queueing.connection()
    stats, cpu = redis.info("commandstats").values(), redis.info("cpu")
    return {
        "redis": float(sum(entry["calls"] for entry in stats)),
        "redis_us": (cpu["used_cpu_sys"] + cpu["used_cpu_user"]) * 1_000_000,
    }


def _pg_counts() -> dict[str, float]:
    """Transactions, rows written and milliseconds of statements in the bench database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted,"
            " active_time FROM pg_stat_database WHERE datname = current_database()"
        )
        transactions, rows, active = cursor.fetchone()
    return {"transactions": float(transactions), "rows": float(rows), "pg_ms": float(active)}
