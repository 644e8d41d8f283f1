"""Chaos for the reconciler and the schedule loop: `manage.py run_scheduler` and `manage.py
rqworker` processes, as the procfile runs them, against a redis-server and a PostgreSQL server
the test starts (tests/servers.py), never the machine's shared ones.
"""

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from tests.servers import PrivatePostgres, RedisServer, on_server, spare_port
from tests.workers import BASE_DIR, _worker_env, stop_process_groups, wait_for

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


@dataclass
class Servers:
    postgres: PrivatePostgres
    redis: RedisServer

    def count(self, sql: str) -> int:
        return self.postgres.count(sql)

    def jobs(self, kind: str) -> dict[str, str]:
        """Id → status of every job of `kind`."""
        rows = self.postgres.rows(f"SELECT id, status FROM jobs_job WHERE kind = '{kind}'")
        return {str(job_id): status for job_id, status in rows}


@pytest.fixture
def servers(private_postgres: PrivatePostgres) -> Iterator[Servers]:
    """The test's PostgreSQL, with every table and a tenant `acme`, and its Redis."""
    on_server(private_postgres, "create")
    own = RedisServer(spare_port())
    own.start()
    try:
        yield Servers(private_postgres, own)
    finally:
        own.stop()


@pytest.fixture
def process(servers: Servers) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `manage.py <command>` on the test's servers, in a session of its own."""
    started: list[subprocess.Popen] = []
    env = {**_worker_env(), "DATABASE_URL": servers.postgres.url, "REDIS_URL": servers.redis.url}

    def start(*command: str) -> subprocess.Popen:
        child = subprocess.Popen(
            [sys.executable, "manage.py", *command], cwd=BASE_DIR, env=env, start_new_session=True
        )
        started.append(child)
        return child

    yield start
    stop_process_groups(started)


def _workers(process: Callable[..., subprocess.Popen]) -> None:
    """A worker for `default` and one for `maintenance`, as the procfile runs them."""
    process("rqworker", "default", "--with-scheduler")
    process("rqworker", "maintenance", "--worker-class", "jobs.runtime.worker.Worker")


RECONCILE = "jobs.reconcile_jobs"


def test_a_reconcile_run_enqueued_while_redis_was_down_is_handed_over_and_later_runs_follow(
    servers, process
):
    process("run_scheduler", "--interval", "1")
    _workers(process)
    built_in = "SELECT count(*) FROM jobs_schedule WHERE kind = 'jobs.reconcile_jobs'"
    wait_for(lambda: servers.count(built_in) == 1, timeout=30)
    # Every 2 s, as an operator may set it in the admin, so that later runs come quickly; the
    # first run is held back until Redis is down.
    _reschedule_reconcile(servers, "now() + interval '1 hour'")
    wait_for(lambda: set(servers.jobs(RECONCILE).values()) <= {"succeeded"}, timeout=30)
    earlier = set(servers.jobs(RECONCILE))

    servers.redis.stop()  # unreachable from the moment the reconcile run falls due
    _reschedule_reconcile(servers, "now()")
    on_server(servers.postgres, "enqueue", ("jobs.noop", 1, {}), redis_url=servers.redis.url)
    wait_for(lambda: len(servers.jobs(RECONCILE)) > len(earlier), timeout=30)
    time.sleep(3)  # a later run falls due meanwhile: skipped, its previous job is still active
    [(stalled, status)] = [
        item for item in servers.jobs(RECONCILE).items() if item[0] not in earlier
    ]
    assert status == "pending"
    assert list(servers.jobs("jobs.noop").values()) == ["pending"]

    servers.redis.start()  # empty
    back = time.monotonic()
    done = (
        "SELECT count(*) FROM jobs_job WHERE kind = 'jobs.reconcile_jobs' AND status = 'succeeded'"
    )
    wait_for(lambda: servers.count(done) >= len(earlier) + 3, timeout=60, every=0.5)
    took = time.monotonic() - back

    assert servers.jobs(RECONCILE)[stalled] == "succeeded"
    assert list(servers.jobs("jobs.noop").values()) == ["succeeded"]
    assert took < 30, f"three reconcile runs took {took:.1f} s after Redis came back"


def _reschedule_reconcile(servers: Servers, next_run_at: str) -> None:
    servers.postgres.rows(
        f"UPDATE jobs_schedule SET cron = '', interval_seconds = 2, next_run_at = {next_run_at}"
        " WHERE kind = 'jobs.reconcile_jobs' RETURNING id"
    )


def test_5000_jobs_redis_lost_before_they_ran_are_back_within_30_s_and_run_once(servers, process):
    client = redis.Redis.from_url(servers.redis.url)
    process("run_scheduler")
    on_server(servers.postgres, "enqueue", ("jobs.noop", 5000, {}), redis_url=servers.redis.url)
    assert client.llen("rq:queue:default") == 5000
    wait_for(lambda: servers.count("SELECT count(*) FROM jobs_schedule") > 0, timeout=30)

    client.flushall()  # before any worker took one
    lost_at = time.time()
    _workers(process)
    succeeded = "SELECT count(*) FROM jobs_job WHERE status = 'succeeded' AND attempt = 1"
    wait_for(lambda: servers.count(succeeded) >= 5000, timeout=90, every=0.5)

    [(requeued, last_back)] = servers.postgres.rows(
        "SELECT count(DISTINCT job_id), extract(epoch FROM max(created_at)) FROM jobs_joblog"
        " WHERE event = 'requeued'"
    )
    assert requeued == 5000
    back_after = float(last_back) - lost_at
    assert back_after < 30, f"the last job was back {back_after:.1f} s after the loss"
    assert servers.postgres.rows(_STARTS.format(kind="jobs.noop")) == [(5000, 5000)]


_STARTS = (
    "SELECT count(*), count(DISTINCT job_id) FROM jobs_joblog JOIN jobs_job ON jobs_job.id = job_id"
    " WHERE event = 'started' AND kind = '{kind}'"
)
