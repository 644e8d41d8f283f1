"""Throughput of tracked no-op jobs per worker class, beside bare RQ on the same servers.

    python -m bench.worker_classes [--jobs N] [--rounds R]

Needs DATABASE_URL and REDIS_URL (a spare Redis database: it is flushed) and a migrated
database; prints jobs per second, median of the rounds with min–max.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import standalone

standalone.setup(create_database=False)

from django.conf import settings  # noqa: E402
from rq import Queue  # noqa: E402

from jobs.models import Job  # noqa: E402
from jobs.services.jobs import enqueue_jobs  # noqa: E402
from jobs.transport import queueing  # noqa: E402
from tenants.models import Tenant  # noqa: E402

BASE_DIR = Path(settings.BASE_DIR)


def drain(worker_class: str) -> float:
    command = [sys.executable, "manage.py", "rqworker", "default", "--burst"]
    command += ["--worker-class", worker_class]
    started = time.perf_counter()
    subprocess.run(command, cwd=BASE_DIR, check=True, env={**os.environ, "LOG_LEVEL": "WARNING"})
    return time.perf_counter() - started


def startup(worker_class: str) -> float:
    """Time of an empty burst: the process start that every round also pays."""
    return drain(worker_class)


def tracked_round(tenant: Tenant, jobs: int, worker_class: str) -> float:
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * jobs)
    elapsed = drain(worker_class) - startup(worker_class)
    assert not Job.objects.filter(tenant=tenant).exclude(status="succeeded").exists()
    Job.objects.filter(tenant=tenant).delete()
    return jobs / elapsed


def bare_round(jobs: int, worker_class: str) -> float:
    queue = Queue("default", connection=queueing.connection())
    with queueing.connection().pipeline() as pipe:
        queue.enqueue_many(
            [Queue.prepare_data("bench.noop.noop") for _ in range(jobs)], pipeline=pipe
        )
        pipe.execute()
    return jobs / (drain(worker_class) - startup(worker_class))


def report(name: str, rates: list[float], baseline: float | None) -> float:
    median = statistics.median(rates)
    ratio = f"{median / baseline:5.2f}×" if baseline else "  1.00×"
    print(f"{name:<44} {median:8.0f} jobs/s  ({min(rates):.0f}–{max(rates):.0f})  {ratio}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    queueing.connection().flushdb()
    tenant, _ = Tenant.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    for bare, ours in (
        ("rq.SimpleWorker", "jobs.runtime.worker.FastWorker"),
        ("rq.Worker", "jobs.runtime.worker.Worker"),
    ):
        baseline = report(
            f"bare RQ {bare}", [bare_round(args.jobs, bare) for _ in range(args.rounds)], None
        )
        report(
            f"tracked {ours}",
            [tracked_round(tenant, args.jobs, ours) for _ in range(args.rounds)],
            baseline,
        )


if __name__ == "__main__":
    main()
