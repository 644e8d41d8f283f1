"""What durable outcomes cost: the runner's path of a job (claim, a no-op body, the outcome)
with outcomes committed durably (the default) beside CONVEYOR_DURABLE_OUTCOMES=false.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/conveyor_bench \\
    REDIS_URL=redis://127.0.0.1:6379/13 python -m bench.outcomes [--jobs N] [--rounds R]

Each round enqueues `jobs` no-op jobs and runs each through `jobs.runtime.runner.execute` in
this process, one after another, as a worker would; rounds of both modes alternate, so load from
elsewhere on the machine falls on both alike. Jobs per second from the first claim to the last
outcome. Redis is flushed (its database must be a spare one).
"""

import argparse
import time

from bench import standalone

standalone.environment()

from bench.table import Figure  # noqa: E402

JOBS = 1_000


def drain(jobs: int, *, durable: bool) -> float:
    """Jobs per second through the runner for `jobs` fresh no-op jobs."""
    from django.test import override_settings

    from jobs.runtime import runner
    from jobs.services.jobs import enqueue_jobs
    from jobs.transport import queueing
    from tenants.models import Tenant

    tenant, _ = Tenant.objects.get_or_create(slug="bench", defaults={"name": "Benchmarks"})
    queued = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * jobs)
    queueing.connection().flushdb()
    with override_settings(CONVEYOR_DURABLE_OUTCOMES=durable):
        started = time.perf_counter()
        for job in queued:
            runner.execute(job.rq_id, job.kind, tenant.pk)
        return jobs / (time.perf_counter() - started)


def measure(*, rounds: int, jobs: int) -> list[Figure]:
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for durable in (False, True):
            rates[durable].append(drain(jobs, durable=durable))
    return [
        Figure(
            "runner path of a no-op job (claim, body, outcome), durable outcomes",
            "jobs/s",
            rates[True],
            "CONVEYOR_DURABLE_OUTCOMES=false",
            rates[False],
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    standalone.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    for figure in measure(rounds=args.rounds, jobs=args.jobs):
        values = ", ".join(f"{value:,.0f}" for value in figure.values)
        base = ", ".join(f"{value:,.0f}" for value in figure.baseline_values)
        print(f"{figure.name}: {figure.median:,.0f} {figure.unit} ({values})")
        print(f"  beside {figure.baseline_name}: ({base}); ratio {figure.ratio:.2f}×")


if __name__ == "__main__":
    main()
