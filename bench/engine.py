"""The engine beside bare RQ on the same servers: throughput, enqueue, latency, memory.

Tracked jobs are `jobs.noop` jobs enqueued through `jobs.services.jobs` and run by the product's
default worker (`manage.py rqworker default`, CONVEYOR_WORKER_CLASS). The baseline is bare RQ:
`bench.noop.noop` enqueued with `Queue.enqueue_many` / `Queue.enqueue` on queue `bench-bare`
and run by `rq worker --worker-class rq.SimpleWorker --quiet` (RQ's CLI, no Django). Workers
are started once per process count, left idle, and rounds of both kinds alternate, so load
from elsewhere on the machine falls on both alike.
"""

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import Max, Min
from rq import Queue
from rq import Worker as RQWorker
from rq.job import Job as RQJob
from rq.utils import utcparse

from bench import servers
from bench.table import Figure
from jobs.models import Job
from jobs.services.jobs import enqueue_job, enqueue_jobs
from jobs.transport import queueing
from tenants.models import Tenant

BARE_QUEUE = "bench-bare"
BARE_FUNCTION = "bench.noop.noop"
TRACKED_QUEUE = "default"
BARE = "bare RQ"


@dataclass(frozen=True)
class Sizes:
    throughput_jobs: int
    bulk_jobs: int
    single_jobs: int
    latency_samples: int
    memory_jobs: int

    @classmethod
    def for_run(cls, *, quick: bool) -> "Sizes":
        if quick:
            return cls(500, 10_000, 100, 60, 2_000)
        return cls(2_000, 10_000, 300, 200, 10_000)


def bench_tenant() -> Tenant:
    tenant, _ = Tenant.objects.get_or_create(slug="bench", defaults={"name": "Benchmarks"})
    return tenant


def forget_jobs(tenant: Tenant) -> None:
    """Delete the tenant's jobs and logs (bench data only), then vacuum both tables.

    Without the vacuum each round would insert into indexes still full of the last round's
    dead entries, and rounds would slow down one after another.
    """
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM jobs_joblog WHERE tenant_id = %s", [tenant.pk])
        cursor.execute("DELETE FROM jobs_job WHERE tenant_id = %s", [tenant.pk])
        cursor.execute("VACUUM jobs_joblog, jobs_job")


def wait_until(condition: Callable[[], bool], *, timeout: float, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the workers did not finish in time")
        time.sleep(every)


# --- worker processes ---------------------------------------------------------------------------


class Workers:
    """`count` worker processes of one kind, started together and idle once `start` returns.

    A tracked worker runs CONVEYOR_WORKER_CLASS unless `worker_class` names another, with the
    `--concurrency` given (if any) and `env` added to its environment.
    """

    def __init__(
        self,
        kind: str,
        count: int,
        *,
        worker_class: str = "",
        concurrency: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.count = count
        self.worker_class = worker_class or settings.CONVEYOR_WORKER_CLASS
        self.concurrency = concurrency
        self.env = env or {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.jobs_done = 0

    @property
    def queue(self) -> str:
        return TRACKED_QUEUE if self.kind == "tracked" else BARE_QUEUE

    def command(self) -> list[str]:
        if self.kind == "tracked":
            return [
                sys.executable,
                "manage.py",
                "rqworker",
                TRACKED_QUEUE,
                "--worker-class",
                self.worker_class,
                *(["--concurrency", str(self.concurrency)] if self.concurrency else []),
            ]
        return [
            sys.executable,
            "-m",
            "rq.cli",
            "worker",
            "--quiet",
            "--worker-class",
            "rq.SimpleWorker",
            "--url",
            os.environ["REDIS_URL"],
            BARE_QUEUE,
        ]

    def start(self) -> None:
        self.processes = [servers.start(self.command(), **self.env) for _ in range(self.count)]
        redis = queueing.connection()
        pids = {process.pid for process in self.processes}

        def idle() -> bool:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a {self.kind} worker exited with {process.returncode}")
            found = RQWorker.all(connection=redis, queue=Queue(self.queue, connection=redis))
            return len({w.pid for w in found if w.pid in pids and w.get_state() == "idle"}) == len(
                pids
            )

        wait_until(idle, timeout=120, every=0.1)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def resident_mib(self) -> float:
        return max(servers.resident_mib(process.pid) for process in self.processes)


@contextmanager
def worker_pair(count: int) -> Iterator[tuple[Workers, Workers]]:
    """Tracked and bare workers, `count` of each, idle and waiting on their own queues."""
    tracked, bare = Workers("tracked", count), Workers("bare", count)
    try:
        tracked.start()
        bare.start()
        yield tracked, bare
    finally:
        tracked.stop()
        bare.stop()


# --- rounds ---------------------------------------------------------------------------------------


def tracked_drain(tenant: Tenant, jobs: int) -> float:
    """Jobs per second from the first start to the last finish of `jobs` tracked no-ops."""
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * jobs)
    done = Job.objects.filter(tenant=tenant, status=Job.Status.SUCCEEDED)
    wait_until(lambda: done.count() >= jobs, timeout=60 + jobs / 10, every=0.2)
    span = done.aggregate(first=Min("started_at"), last=Max("finished_at"))
    forget_jobs(tenant)
    return jobs / (span["last"] - span["first"]).total_seconds()


def bare_drain(jobs: int) -> float:
    redis = queueing.connection()
    queue = Queue(BARE_QUEUE, connection=redis)
    finished_key = queue.finished_job_registry.key
    before = redis.zcard(finished_key)
    with redis.pipeline() as pipe:
        enqueued = queue.enqueue_many(
            [Queue.prepare_data(BARE_FUNCTION) for _ in range(jobs)], pipeline=pipe
        )
        pipe.execute()
    wait_until(
        lambda: redis.zcard(finished_key) >= before + jobs, timeout=60 + jobs / 10, every=0.2
    )
    spans = _bare_spans([job.id for job in enqueued])
    return jobs / (max(end for _, end in spans) - min(start for start, _ in spans))


def _bare_spans(job_ids: list[str]) -> list[tuple[float, float]]:
    redis = queueing.connection()
    with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(RQJob.key_for(job_id), "started_at", "ended_at")
        replies = pipe.execute()
    return [
        (utcparse(start.decode()).timestamp(), utcparse(end.decode()).timestamp())
        for start, end in replies
    ]


def tracked_latency(tenant: Tenant) -> tuple[float, float]:
    """Milliseconds from calling enqueue_job to the job's start and to its end."""
    redis = queueing.connection()
    called = time.time()
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    _wait_finished(redis, job.rq_id)
    started, finished = Job.objects.values_list("started_at", "finished_at").get(pk=job.pk)
    assert started is not None
    assert finished is not None
    return (started.timestamp() - called) * 1000, (finished.timestamp() - called) * 1000


def bare_latency() -> tuple[float, float]:
    redis = queueing.connection()
    queue = Queue(BARE_QUEUE, connection=redis)
    called = time.time()
    rq_job = queue.enqueue(BARE_FUNCTION)
    _wait_finished(redis, rq_job.id)
    ((started, ended),) = _bare_spans([rq_job.id])
    return (started - called) * 1000, (ended - called) * 1000


def _wait_finished(redis: object, rq_id: str) -> None:
    key = RQJob.key_for(rq_id)
    deadline = time.monotonic() + 10
    while redis.hget(key, "status") != b"finished":  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {rq_id} did not finish")
        time.sleep(0.0005)


def percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


# --- measurements ------------------------------------------------------------------------------


def measure_enqueue(*, rounds: int, sizes: Sizes) -> list[Figure]:
    """Bulk enqueue of 10,000 jobs and single enqueues, tracked and bare; no worker runs."""
    tenant = bench_tenant()
    redis = queueing.connection()
    queue = Queue(BARE_QUEUE, connection=redis)
    bulk: dict[str, list[float]] = {"tracked": [], "bare": []}
    single: dict[str, list[float]] = {"tracked": [], "bare": []}
    for _ in range(rounds):
        started = time.perf_counter()
        enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * sizes.bulk_jobs)
        bulk["tracked"].append(sizes.bulk_jobs / (time.perf_counter() - started))
        forget_jobs(tenant)
        redis.flushdb()

        started = time.perf_counter()
        with redis.pipeline() as pipe:
            queue.enqueue_many(
                [Queue.prepare_data(BARE_FUNCTION) for _ in range(sizes.bulk_jobs)], pipeline=pipe
            )
            pipe.execute()
        bulk["bare"].append(sizes.bulk_jobs / (time.perf_counter() - started))
        redis.flushdb()

        started = time.perf_counter()
        for _ in range(sizes.single_jobs):
            enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
        single["tracked"].append(sizes.single_jobs / (time.perf_counter() - started))
        forget_jobs(tenant)
        redis.flushdb()

        started = time.perf_counter()
        for _ in range(sizes.single_jobs):
            queue.enqueue(BARE_FUNCTION)
        single["bare"].append(sizes.single_jobs / (time.perf_counter() - started))
        redis.flushdb()
    return [
        Figure(
            f"bulk enqueue of {sizes.bulk_jobs:,} tracked jobs (enqueue_jobs)",
            "jobs/s",
            bulk["tracked"],
            f"{BARE} enqueue_many",
            bulk["bare"],
            target="≥ 0.9×",
        ),
        Figure(
            "single enqueue (enqueue_job)",
            "jobs/s",
            single["tracked"],
            f"{BARE} Queue.enqueue",
            single["bare"],
        ),
    ]


def measure_workers(
    *, rounds: int, sizes: Sizes, throughput: bool, latency: bool, memory: bool
) -> list[Figure]:
    """Throughput with 1 and 2 processes, latency and memory on the single process."""
    figures: list[Figure] = []
    tenant = bench_tenant()
    forget_jobs(tenant)
    queueing.connection().flushdb()
    counts = [1, 2] if throughput else [1]
    for count in counts:
        with worker_pair(count) as (tracked, bare):
            if throughput:
                figures.append(_throughput(tracked, bare, tenant, rounds=rounds, sizes=sizes))
            if count == 1 and latency:
                figures += _latency(tracked, bare, tenant, rounds=rounds, sizes=sizes)
            if count == 1 and memory:
                figures.append(_memory(tracked, bare, tenant, sizes=sizes))
        queueing.connection().flushdb()
    return figures


def _throughput(
    tracked: Workers, bare: Workers, tenant: Tenant, *, rounds: int, sizes: Sizes
) -> Figure:
    rates: dict[str, list[float]] = {"tracked": [], "bare": []}
    for _ in range(rounds):
        rates["bare"].append(bare_drain(sizes.throughput_jobs))
        rates["tracked"].append(tracked_drain(tenant, sizes.throughput_jobs))
        bare.jobs_done += sizes.throughput_jobs
        tracked.jobs_done += sizes.throughput_jobs
    processes = "1 process" if tracked.count == 1 else f"{tracked.count} processes"
    return Figure(
        f"tracked no-op throughput, default worker, {processes}",
        "jobs/s",
        rates["tracked"],
        f"{BARE} SimpleWorker × {bare.count}",
        rates["bare"],
        target="≥ 1.0×" if tracked.count == 2 else "",
    )


def _latency(
    tracked: Workers, bare: Workers, tenant: Tenant, *, rounds: int, sizes: Sizes
) -> list[Figure]:
    found: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(rounds):
        samples: dict[str, list[tuple[float, float]]] = {"tracked": [], "bare": []}
        for _ in range(sizes.latency_samples):
            samples["bare"].append(bare_latency())
            time.sleep(0.01)  # let the worker go back to waiting: an idle worker is measured
            samples["tracked"].append(tracked_latency(tenant))
            time.sleep(0.01)
        forget_jobs(tenant)
        for kind, pairs in samples.items():
            for index, edge in enumerate(("start", "end")):
                for name, value in percentiles([pair[index] for pair in pairs]).items():
                    found.setdefault((kind, edge, name), []).append(value)
    tracked.jobs_done += rounds * sizes.latency_samples
    bare.jobs_done += rounds * sizes.latency_samples
    figures = []
    for edge in ("start", "end"):
        for name in ("p50", "p95", "p99"):
            figures.append(
                Figure(
                    f"latency enqueue→{edge} {name}, idle default worker",
                    "ms",
                    found[("tracked", edge, name)],
                    f"{BARE} SimpleWorker",
                    found[("bare", edge, name)],
                    higher_is_better=False,
                    target="≤ 1.5×" if (edge, name) == ("start", "p50") else "",
                )
            )
    return figures


def _memory(tracked: Workers, bare: Workers, tenant: Tenant, *, sizes: Sizes) -> Figure:
    """Resident memory of one worker process after `memory_jobs` jobs (one reading)."""
    while tracked.jobs_done < sizes.memory_jobs:
        batch = min(2_000, sizes.memory_jobs - tracked.jobs_done)
        tracked_drain(tenant, batch)
        tracked.jobs_done += batch
    while bare.jobs_done < sizes.memory_jobs:
        batch = min(2_000, sizes.memory_jobs - bare.jobs_done)
        bare_drain(batch)
        bare.jobs_done += batch
    return Figure(
        f"worker resident memory after {sizes.memory_jobs:,} jobs",
        "MiB",
        [tracked.resident_mib()],
        f"{BARE} SimpleWorker",
        [bare.resident_mib()],
        higher_is_better=False,
    )
