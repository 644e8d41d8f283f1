"""Many jobs at once in one worker process: the concurrent worker beside FastWorker and peers.

- I/O: `bench.wait` jobs that each wait 100 ms, one `manage.py rqworker default --concurrency C`
  process (C = 10 and 50), jobs per second from the first start to the last finish; beside it
  the same jobs in BullMQ (one Node process, `concurrency: C`) and Dramatiq (one process, C
  threads), run by the scripts in bench/peers/ when the peers are installed (BullMQ with npm in
  BENCH_NODE_MODULES' folder, default var/peers/node/node_modules; Dramatiq in
  BENCH_PEER_PYTHON's environment, default var/peers/venv/bin/python); a peer that is not
  installed is skipped.
- tracked no-op throughput of one ConcurrentWorker process beside one FastWorker process,
  rounds alternating (each worker is started for its round, so they never share the queue).
- resident memory of a ConcurrentWorker while it runs 20 jobs at once beside a FastWorker
  running the same jobs one at a time, both after the same no-op rounds.
"""

import functools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from django.db.models import Max, Min

import bench.kinds  # noqa: F401 (registers bench.wait, which this process enqueues)
from bench import servers
from bench.engine import (
    Sizes,
    Workers,
    bench_tenant,
    forget_jobs,
    tracked_drain,
    wait_until,
)
from bench.table import Figure
from jobs.models import Job
from jobs.services.jobs import enqueue_jobs
from jobs.transport import queueing
from tenants.models import Tenant

CONCURRENT = "jobs.runtime.worker.ConcurrentWorker"
FAST = "jobs.runtime.worker.FastWorker"
WAIT_MS = 100
PRELOAD = {"CONVEYOR_PRELOAD": "bench.kinds"}
# Peers live outside the project's dependencies: by default under var/peers (not tracked).
PEER_HOME = servers.ROOT / "var" / "peers"
NODE_MODULES = Path(os.environ.get("BENCH_NODE_MODULES", PEER_HOME / "node" / "node_modules"))
PEER_PYTHON = Path(os.environ.get("BENCH_PEER_PYTHON", PEER_HOME / "venv" / "bin" / "python"))
PEERS = servers.ROOT / "bench" / "peers"
TARGETS = {10: "≥ 90 jobs/s", 50: "≥ 450 jobs/s"}


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def measure_concurrency(*, rounds: int, sizes: Sizes, quick: bool) -> list[Figure]:
    tenant = bench_tenant()
    forget_jobs(tenant)
    queueing.connection().flushdb()
    figures = [_io(tenant, concurrency, rounds=rounds, quick=quick) for concurrency in (10, 50)]
    figures += _peers(rounds=rounds, quick=quick)
    figures.append(_noop_throughput(tenant, rounds=rounds, jobs=sizes.throughput_jobs))
    figures.append(_memory(tenant, jobs=sizes.throughput_jobs))
    return figures


def _io_jobs(concurrency: int, *, quick: bool) -> int:
    return concurrency * (10 if quick else 20)  # about 1 or 2 s of work at full concurrency


def _io(tenant: Tenant, concurrency: int, *, rounds: int, quick: bool) -> Figure:
    jobs = _io_jobs(concurrency, quick=quick)
    worker = Workers("tracked", 1, worker_class=CONCURRENT, concurrency=concurrency, env=PRELOAD)
    worker.start()
    try:
        rates = [_drain(tenant, "bench.wait", jobs, {"ms": WAIT_MS}) for _ in range(rounds)]
    finally:
        worker.stop()
    return Figure(
        f"100 ms I/O jobs, one ConcurrentWorker process, concurrency {concurrency}",
        "jobs/s",
        rates,
        target=TARGETS[concurrency],
    )


def _drain(tenant: Tenant, kind: str, jobs: int, payload: dict[str, int]) -> float:
    enqueue_jobs(tenant=tenant, kind=kind, payloads=[payload] * jobs)
    done = Job.objects.filter(tenant=tenant, status=Job.Status.SUCCEEDED)
    wait_until(lambda: done.count() >= jobs, timeout=60 + jobs / 5, every=0.1)
    span = done.aggregate(first=Min("started_at"), last=Max("finished_at"))
    forget_jobs(tenant)
    return jobs / (span["last"] - span["first"]).total_seconds()


def _peers(*, rounds: int, quick: bool) -> list[Figure]:
    figures = []
    for concurrency in (10, 50):
        jobs = _io_jobs(concurrency, quick=quick)
        for name, command in _peer_commands(jobs, concurrency).items():
            rates = [_peer_round(command) for _ in range(rounds)]
            queueing.connection().flushdb()
            title = f"100 ms I/O jobs, {name}, concurrency {concurrency} (peer)"
            figures.append(Figure(title, "jobs/s", rates))
    return figures


def _peer_commands(jobs: int, concurrency: int) -> dict[str, list[str]]:
    found = {}
    args = [str(jobs), str(concurrency), str(WAIT_MS)]
    if (NODE_MODULES / "bullmq").exists():
        found["BullMQ, one Node process"] = [
            "node",
            str(PEERS / "bullmq_io.cjs"),
            os.environ["REDIS_URL"],
            *args,
        ]
    else:
        say(f"BullMQ is not installed in {NODE_MODULES}: its peer figure is skipped")
    if PEER_PYTHON.exists():
        found["Dramatiq, one process"] = [str(PEER_PYTHON), str(PEERS / "dramatiq_io.py"), *args]
    else:
        say(f"no Python with Dramatiq at {PEER_PYTHON}: its peer figure is skipped")
    return found


def _peer_round(command: list[str]) -> float:
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES), "BENCH_REDIS_URL": os.environ["REDIS_URL"]}
    output = subprocess.run(
        command, env=env, check=True, stdout=subprocess.PIPE, text=True, timeout=300
    ).stdout
    return float(json.loads(output.strip().splitlines()[-1])["rate"])


def _noop_throughput(tenant: Tenant, *, rounds: int, jobs: int) -> Figure:
    rates: dict[str, list[float]] = {FAST: [], CONCURRENT: []}
    for _ in range(rounds):
        for worker_class, found in rates.items():
            worker = Workers("tracked", 1, worker_class=worker_class)
            worker.start()
            try:
                found.append(tracked_drain(tenant, jobs))
            finally:
                worker.stop()
    return Figure(
        "tracked no-op throughput, ConcurrentWorker (concurrency 10), 1 process",
        "jobs/s",
        rates[CONCURRENT],
        "FastWorker, 1 process",
        rates[FAST],
        target="≥ 2.0×",
    )


def _memory(tenant: Tenant, *, jobs: int) -> Figure:
    """Peak resident memory while 20 jobs run at once, beside one at a time, after `jobs` no-ops."""
    readings = {}
    for worker_class, concurrency, count in ((FAST, None, 20), (CONCURRENT, 20, 400)):
        worker = Workers(
            "tracked", 1, worker_class=worker_class, concurrency=concurrency, env=PRELOAD
        )
        worker.start()
        try:
            tracked_drain(tenant, jobs)
            work = functools.partial(_drain, tenant, "bench.wait", count, {"ms": WAIT_MS})
            readings[worker_class] = _peak_while(worker, work)
        finally:
            worker.stop()
    return Figure(
        "worker resident memory, ConcurrentWorker running 20 jobs at once",
        "MiB",
        [readings[CONCURRENT]],
        "FastWorker, one at a time",
        [readings[FAST]],
        higher_is_better=False,
        target="≤ 1.3×",
    )


def _peak_while(worker: Workers, work: Callable[[], object]) -> float:
    peak = worker.resident_mib()
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.05):
            peak = max(peak, worker.resident_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        work()
    finally:
        stop.set()
        sampler.join()
    return peak
