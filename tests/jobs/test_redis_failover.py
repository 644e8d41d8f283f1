"""Redis failover under Sentinel: workers and enqueues go through `REDIS_URL=sentinel://…`, the
primary is killed mid-run, Sentinel promotes the replica, and everything carries on against it.
Jobs acknowledged before the failover are not lost (the PostgreSQL row and the reconciler make up
for what the replica had not received) and none runs twice.

Real servers started by the test from the installed `redis-server` (primary, replica, and one
sentinel with a quorum of one) and a private PostgreSQL.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import redis

from tests.servers import PrivatePostgres, on_server, postgres_server, redis_server, spare_port
from tests.workers import BASE_DIR, _worker_env, wait_for

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")

MASTER = "conveyor"
JOBS = ("tests.sleep_then_record", 200, {"seconds": 0.05})
LATER = 20  # enqueued through Sentinel after the failover
RECONNECT_BOUND = 20  # seconds from the primary's death to the first job recorded after it


@contextlib.contextmanager
def sentinel(primary: int) -> Iterator[int]:
    port = spare_port()
    folder = Path(tempfile.mkdtemp(prefix="conveyor-sentinel-"))
    config = folder / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {folder}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {primary} 1\n"
        f"sentinel down-after-milliseconds {MASTER} 1000\n"
        f"sentinel failover-timeout {MASTER} 5000\n"
    )
    command = ["redis-server", str(config), "--sentinel"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _knows_replica(port), timeout=20, every=0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _knows_replica(port: int) -> bool:
    with contextlib.suppress(redis.ConnectionError):
        return bool(redis.Redis(port=port).sentinel_slaves(MASTER))
    return False


def _master_port(sentinel_port: int) -> int:
    address = redis.Redis(port=sentinel_port).sentinel_get_master_addr_by_name(MASTER)
    return int(cast(tuple[str, int], address)[1])


def test_a_redis_failover_under_sentinel_loses_no_job_and_runs_none_twice():
    primary, replica = spare_port(), spare_port()
    with (
        postgres_server() as server,
        redis_server(primary) as primary_process,
        redis_server(replica, options=["--replicaof", "127.0.0.1", str(primary)]),
        sentinel(primary) as sentinel_port,
    ):
        url = f"sentinel://127.0.0.1:{sentinel_port}/{MASTER}/0"
        on_server(server, "create", JOBS, redis_url=url)
        workers = [_start_worker(server, url, name=f"w{i}", scheduler=i == 1) for i in (1, 2)]
        try:
            wait_for(lambda: _succeeded(server) >= 40, timeout=60, every=0.1)
            primary_process.send_signal(signal.SIGKILL)
            primary_process.wait(timeout=10)
            killed_at, before = time.monotonic(), _succeeded(server)

            wait_for(lambda: _master_port(sentinel_port) == replica, timeout=30, every=0.2)
            wait_for(lambda: _succeeded(server) > before, timeout=RECONNECT_BOUND, every=0.1)
            carried_on = time.monotonic() - killed_at
            on_server(server, "enqueue", (JOBS[0], LATER, JOBS[2]), redis_url=url)
            total = JOBS[1] + LATER
            wait_for(lambda: _settled(server, url, total), timeout=120, every=1)
            assert [process.poll() for process in workers] == [None, None], "a worker died"
        finally:
            for process in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)

        effects = (
            "SELECT count(DISTINCT slug), count(*) FROM tenants_tenant WHERE slug LIKE 'effect-%'"
        )
        outcomes = (
            "SELECT count(DISTINCT job_id), count(*) FROM jobs_joblog WHERE event = 'succeeded'"
        )
        assert server.rows(effects) == [(total, total)]
        assert server.rows(outcomes) == [(total, total)], "an outcome was recorded twice"
        assert carried_on < RECONNECT_BOUND


def _succeeded(server: PrivatePostgres) -> int:
    return server.count("SELECT count(*) FROM jobs_job WHERE status = 'succeeded'")


def _settled(server: PrivatePostgres, url: str, total: int) -> bool:
    if _succeeded(server) == total:
        return True
    on_server(server, "reconcile", redis_url=url)
    return False


def _start_worker(
    server: PrivatePostgres, url: str, *, name: str, scheduler: bool
) -> subprocess.Popen:
    env = {
        **_worker_env(),
        "DATABASE_URL": server.url,
        "REDIS_URL": url,
        "CONVEYOR_HEARTBEAT_SECONDS": "1",
        "CONVEYOR_HEARTBEAT_GRACE": "2",
    }
    command = [sys.executable, "manage.py", "rqworker", "default", "--name", name]
    command += ["--worker-class", "jobs.runtime.worker.FastWorker"]
    command += ["--with-scheduler"] if scheduler else []
    return subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
