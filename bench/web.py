"""The web side: POST /api/v1/jobs/ under 16 concurrent clients against gunicorn, and the stats
API and the admin job list on 1,000,000 job rows (`bench.million`, in its own process)."""

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import psutil
from django.contrib.auth.models import User

from bench import servers
from bench.engine import bench_tenant, forget_jobs, percentiles, wait_until
from bench.table import Figure
from jobs.transport import queueing
from tenants.models import Membership, Role
from tenants.services import create_api_key

CLIENTS = 16
GUNICORN_WORKERS = 4
UNTHROTTLED = "100000000/min"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _request(headers: dict[str, str], body: bytes) -> bytes:
    """The bytes of one POST /api/v1/jobs/, built once for every request of a run."""
    lines = ["POST /api/v1/jobs/ HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _post(port: int, request: bytes) -> float:
    """One POST on a new connection (gunicorn's sync workers close each); its latency in ms.

    A bare socket rather than http.client: the load runs on the server's own two cores, and
    parsing every answer's headers in Python would take CPU time from the server measured.
    """
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(request)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    if not answer.startswith(b"HTTP/1.1 202 "):
        raise RuntimeError(f"POST /api/v1/jobs/ answered {answer[:200]!r}")
    return (time.perf_counter() - started) * 1000


def _load(port: int, headers: dict[str, str], requests: int) -> tuple[list[float], float]:
    """`requests` POSTs from CLIENTS threads at once; latencies (ms) and requests per second."""
    request = _request(headers, json.dumps({"kind": "jobs.noop", "payload": {}}).encode())
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(share: int) -> None:
        mine = []
        try:
            for _ in range(share):
                mine.append(_post(port, request))
        except BaseException as error:  # reported below, after every thread stopped
            errors.append(error)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(requests // CLIENTS,)) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return latencies, len(latencies) / elapsed


def _api_key() -> str:
    tenant = bench_tenant()
    user, _ = User.objects.get_or_create(username="bench-api")
    Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": Role.ADMIN})
    return create_api_key(user=user, name="bench", tenant=tenant)[1]


def measure_api(*, rounds: int, quick: bool) -> list[Figure]:
    """POST /api/v1/jobs/ against gunicorn (4 sync workers), 16 clients at once; no worker runs."""
    tenant = bench_tenant()
    headers = {
        "Authorization": f"Bearer {_api_key()}",
        "X-Tenant": tenant.slug,
        "Content-Type": "application/json",
    }
    port = _free_port()
    command = [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(GUNICORN_WORKERS), "--log-level", "warning"]
    web = servers.start(
        command, API_THROTTLE_RATE=UNTHROTTLED, API_TENANT_THROTTLE_RATE=UNTHROTTLED
    )
    found: dict[str, list[float]] = {"p50": [], "p95": [], "rate": [], "server": [], "client": []}
    try:
        wait_until(lambda: _answers(port, web), timeout=60, every=0.2)
        _load(port, headers, CLIENTS * 4)  # every gunicorn worker imports and connects first
        for _ in range(rounds):
            server, client = _cpu_seconds(web.pid), time.process_time()
            latencies, rate = _load(port, headers, CLIENTS * (30 if quick else 100))
            cuts = percentiles(latencies)
            found["p50"].append(cuts["p50"])
            found["p95"].append(cuts["p95"])
            found["rate"].append(rate)
            found["server"].append((_cpu_seconds(web.pid) - server) * 1000 / len(latencies))
            found["client"].append((time.process_time() - client) * 1000 / len(latencies))
    finally:
        web.terminate()
        web.wait(timeout=30)
        forget_jobs(tenant)
        queueing.connection().flushdb()
    where = f"{CLIENTS} clients, gunicorn × {GUNICORN_WORKERS}"
    return [
        Figure(
            f"POST /api/v1/jobs/ latency p50 ({where})", "ms", found["p50"], higher_is_better=False
        ),
        Figure(
            f"POST /api/v1/jobs/ latency p95 ({where})",
            "ms",
            found["p95"],
            higher_is_better=False,
            target="< 50 ms",
        ),
        Figure(f"POST /api/v1/jobs/ throughput ({where})", "requests/s", found["rate"]),
        Figure(
            "POST /api/v1/jobs/ gunicorn CPU per request",
            "ms",
            found["server"],
            higher_is_better=False,
        ),
        Figure(
            "POST /api/v1/jobs/ load client CPU per request",
            "ms",
            found["client"],
            higher_is_better=False,
        ),
    ]


def _cpu_seconds(pid: int) -> float:
    """CPU time gunicorn's master and workers have used, in seconds: per request, a figure that
    other work on the machine moves far less than latency."""
    master = psutil.Process(pid)
    processes = [master, *master.children(recursive=True)]
    return sum(sum(process.cpu_times()[:2]) for process in processes)  # user + system


def _answers(port: int, web: subprocess.Popen[bytes]) -> bool:
    if web.poll() is not None:
        raise RuntimeError(f"gunicorn exited with {web.returncode}")
    try:
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        client.request("GET", "/api/v1/health/live")
        status = client.getresponse().status
        client.close()
    except OSError:
        return False
    return status == 200


def measure_million(*, rounds: int, quick: bool, database: str) -> list[Figure]:
    """Stats API, admin job list and the health check on 1,000,000 jobs, in a process using
    that database."""
    command = [sys.executable, "-m", "bench.million", "--rounds", str(rounds)]
    if quick:
        command.append("--quick")
    output = subprocess.run(
        command,
        cwd=servers.ROOT,
        env=servers.child_env(DATABASE_URL=servers.database_url(database)),
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    figures = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        entry: dict[str, Any] = json.loads(line)
        if entry.get("skipped"):
            print(f"[bench] million: {entry['skipped']}", file=sys.stderr)
            continue
        unit, target = entry.get("unit", "ms"), entry.get("target", "< 300 ms")
        figures.append(
            Figure(entry["name"], unit, entry["values"], higher_is_better=False, target=target)
        )
    return figures
