"""How tracked throughput grows with worker processes, and what one job costs the servers.

Tracked no-ops are drained by 1, 2 and 4 `manage.py rqworker default` processes; each figure is
a ratio to one process in the same run. From the drains by one process come the per-job costs a
deployment is sized with (docs/capacity.md): Redis commands (`INFO commandstats`: everything
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


def measure_scaling(*, rounds: int, sizes: Sizes) -> list[Figure]:
    tenant = bench_tenant()
    forget_jobs(tenant)
    queueing.connection().flushdb()
    rates: dict[int, list[float]] = {}
    costs: list[dict[str, float]] = []
    for count in PROCESSES:
        workers = Workers("tracked", count)
        workers.start()
        try:
            rates[count] = []
            for _ in range(rounds):
                if count == 1:
                    costs.append(_costs(lambda: tracked_drain(tenant, sizes.throughput_jobs)))
                    rates[count].append(costs[-1]["rate"])
                else:
                    rates[count].append(tracked_drain(tenant, sizes.throughput_jobs))
        finally:
            workers.stop()
        queueing.connection().flushdb()
    return [*_scaling(rates), *_per_job(costs, sizes.throughput_jobs)]


def _scaling(rates: dict[int, list[float]]) -> list[Figure]:
    one = rates[PROCESSES[0]]
    figures = [Figure("tracked no-op throughput, 1 worker process", "jobs/s", one)]
    for count in PROCESSES[1:]:
        figures.append(
            Figure(
                f"tracked no-op throughput, {count} worker processes",
                "jobs/s",
                rates[count],
                "1 worker process",
                one,
            )
        )
    return figures


def _per_job(costs: list[dict[str, float]], jobs: int) -> list[Figure]:
    units = {
        "redis": ("Redis commands per job (inside scripts too)", "commands"),
        "redis_us": ("Redis CPU time per job", "µs"),
        "transactions": ("PostgreSQL transactions per job", "transactions"),
        "rows": ("PostgreSQL rows written per job", "rows"),
        "pg_ms": ("PostgreSQL statement time per job", "ms"),
    }
    return [
        Figure(label, unit, [cost[key] / jobs for cost in costs], higher_is_better=False)
        for key, (label, unit) in units.items()
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
