"""Workflow overhead: a 1,000-step workflow against 1,000 independent jobs, end to end.

    python -m bench.workflows [--steps N] [--rounds R] [--workers W]

Needs DATABASE_URL and REDIS_URL (a migrated database; the "bench-workflows" tenant's jobs and
workflows are deleted between rounds) and starts W `manage.py rqworker default` processes (2 by
default). Each round times, from the call that submits to the last job's end:

- the baseline: N `jobs.noop` jobs enqueued in one call (`enqueue_jobs`);
- N parallel steps: one workflow of N `jobs.noop` steps without edges;
- fan-out and fan-in: one workflow of a root, N − 2 steps that need it and one that needs them all.

The ratio to the baseline is the workflow's cost per step: its step rows, the step keys, and
each end counted off under the workflow's lock.
"""

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import standalone

standalone.setup(create_database=False)

from django.conf import settings  # noqa: E402

from bench.table import Figure  # noqa: E402
from jobs.models import Job  # noqa: E402
from jobs.services.jobs import enqueue_jobs  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from workflows.models import Workflow  # noqa: E402
from workflows.services.running import start_workflow  # noqa: E402

BASE_DIR = Path(settings.BASE_DIR)
TARGET = "≤ 1.5×"


def bench_tenant() -> Tenant:
    tenant, _ = Tenant.objects.get_or_create(slug="bench-workflows", defaults={"name": "Bench"})
    return tenant


def clear(tenant: Tenant) -> None:
    Workflow.objects.for_tenant(tenant).delete()
    Job.objects.for_tenant(tenant).delete()


def wait(done: Callable[[], bool], *, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the jobs did not end in time")
        time.sleep(0.02)


def run_jobs(tenant: Tenant, count: int) -> float:
    clear(tenant)
    started = time.perf_counter()
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{"n": n} for n in range(count)])
    wait(lambda: not Job.objects.for_tenant(tenant).filter(status__in=Job.ACTIVE).exists())
    elapsed = time.perf_counter() - started
    assert Job.objects.for_tenant(tenant).filter(status="succeeded").count() == count
    return elapsed


def parallel(count: int) -> list[dict]:
    return [{"name": f"s{n}", "kind": "jobs.noop", "payload": {"n": n}} for n in range(count)]


def fan_out_in(count: int) -> list[dict]:
    middle = [
        {"name": f"s{n}", "kind": "jobs.noop", "payload": {"n": n}, "needs": ["root"]}
        for n in range(count - 2)
    ]
    names = [step["name"] for step in middle]
    return [
        {"name": "root", "kind": "jobs.noop"},
        *middle,
        {"name": "join", "kind": "jobs.noop", "needs": names},
    ]


def run_workflow(tenant: Tenant, steps: list[dict]) -> float:
    clear(tenant)
    started = time.perf_counter()
    workflow = start_workflow(tenant=tenant, name="bench", steps=steps)
    wait(lambda: Workflow.objects.filter(pk=workflow.pk, status="running").exists() is False)
    elapsed = time.perf_counter() - started
    workflow.refresh_from_db()
    assert workflow.status == "succeeded", workflow.status
    assert workflow.done == len(steps)
    return elapsed


def start_workers(count: int) -> list[subprocess.Popen]:
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "manage.py", "rqworker", "default"]
    return [
        subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
        for _ in range(count)
    ]


def measure(*, rounds: int = 3, steps: int = 1000, workers: int = 2) -> list[Figure]:
    """Seconds from submit to end: N jobs, an N-step workflow, a fan-out/fan-in of N steps."""
    tenant = bench_tenant()
    processes = start_workers(workers)
    try:
        run_jobs(tenant, 100)  # warm-up: workers up, caches filled
        run_workflow(tenant, parallel(100))
        jobs, flat, fanned = [], [], []
        for _ in range(rounds):  # interleaved, so that a busy moment hits each alike
            jobs.append(run_jobs(tenant, steps))
            flat.append(run_workflow(tenant, parallel(steps)))
            fanned.append(run_workflow(tenant, fan_out_in(steps)))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
        clear(tenant)
    baseline = f"{steps:,} independent jobs"
    return [
        Figure(
            name=f"workflow of {steps:,} parallel steps, {workers} workers",
            unit="s",
            values=flat,
            baseline_name=baseline,
            baseline_values=jobs,
            higher_is_better=False,
            target=TARGET,
        ),
        Figure(
            name=f"workflow 1 → {steps - 2:,} → 1 (fan-out, fan-in), {workers} workers",
            unit="s",
            values=fanned,
            baseline_name=baseline,
            baseline_values=jobs,
            higher_is_better=False,
            target=TARGET,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for figure in measure(rounds=args.rounds, steps=args.steps, workers=args.workers):
        base = sorted(figure.baseline_values)[len(figure.baseline_values) // 2]
        print(
            f"{figure.name:<58} {figure.median:6.2f} s  ({min(figure.values):.2f}–"
            f"{max(figure.values):.2f}); {figure.baseline_name}: {base:.2f} s; "
            f"ratio {figure.ratio:.2f}×"
        )


if __name__ == "__main__":
    main()
