"""Many hosts, one system: `manage.py rqworker` processes on three hosts — network namespaces
joined to this one by veth pairs — against a PostgreSQL and a Redis started by the test and
reachable from each. Mid-run one host is cut off from the network and later brought back, and
another is killed outright: every job ends, and each outcome is recorded once.

Creating namespaces needs root (`ip netns`); elsewhere the test is skipped with the reason.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.servers import PrivatePostgres, on_server, postgres_server, redis_server, spare_port
from tests.workers import BASE_DIR, _worker_env, wait_for

NETWORK = "10.231"  # host i is 10.231.i.2, its peer in this namespace 10.231.i.1


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Hosts:
    """Network namespaces `<tag>h<i>`, each joined to this namespace by a veth pair."""

    def __init__(self, count: int) -> None:
        self.tag = f"cv{os.getpid() % 100000}"
        self.count = count
        self.made: list[int] = []

    def namespace(self, i: int) -> str:
        return f"{self.tag}h{i}"

    def link(self, i: int) -> str:
        return f"{self.tag}r{i}"  # this namespace's end of host i's cable

    def gateway(self, i: int) -> str:
        return f"{NETWORK}.{i}.1"

    def make(self) -> None:
        for i in range(1, self.count + 1):
            namespace, inside = self.namespace(i), f"{self.tag}n{i}"
            _ip("netns", "add", namespace)
            self.made.append(i)
            _ip("link", "add", self.link(i), "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", namespace)
            _ip("addr", "add", f"{self.gateway(i)}/24", "dev", self.link(i))
            _ip("link", "set", self.link(i), "up")
            _ip("-n", namespace, "addr", "add", f"{NETWORK}.{i}.2/24", "dev", inside)
            _ip("-n", namespace, "link", "set", inside, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")

    def cut(self, i: int) -> None:
        _ip("link", "set", self.link(i), "down")

    def reconnect(self, i: int) -> None:
        _ip("link", "set", self.link(i), "up")

    def remove(self) -> None:
        for i in self.made:
            with contextlib.suppress(subprocess.SubprocessError):
                _ip("netns", "del", self.namespace(i))  # takes both ends of the veth with it


def _namespaces_refused() -> str:
    if shutil.which("ip") is None:
        return "needs iproute2's `ip`"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"cvprobe{os.getpid() % 100000}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as error:
        return f"`ip netns add` refused here: {error.stderr.decode().strip()}"
    _ip("netns", "del", probe)
    return ""


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    refused = _namespaces_refused()
    if refused:
        pytest.skip(refused)
    made = Hosts(3)
    try:
        made.make()
        yield made
    finally:
        made.remove()


SLOW = ("tests.sleep_then_record", 120, {"seconds": 0.2})
LATER = 10  # jobs enqueued once the cut-off host is back
CUT_SECONDS = 8


def test_workers_on_three_hosts_lose_nothing_when_one_is_cut_off_and_one_is_killed(hosts):
    redis_port = spare_port()
    addresses = [hosts.gateway(i) for i in (1, 2, 3)]
    with (
        postgres_server(addresses=addresses) as server,
        redis_server(redis_port, bind="0.0.0.0"),
    ):
        on_server(server, "create", SLOW, redis_url=f"redis://127.0.0.1:{redis_port}/0")
        # Host 1 alone runs RQ's scheduler: a killed scheduler keeps its lock for a minute.
        workers = [_start_worker(hosts, i, server, redis_port, scheduler=i == 1) for i in (1, 2, 3)]
        try:
            seen = _cut_one_kill_one_and_finish(hosts, server, redis_port, workers)
        finally:
            for process in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)

    total = SLOW[1] + LATER
    assert seen["effects"] == [(total, total)]
    assert seen["outcomes"] == [(total, total)], "an outcome was recorded twice"
    assert seen["rescued"] >= 2, "the cut-off and the killed host's jobs were not rescued"
    assert seen["back"] >= 1, "the host brought back took no more work"


def _cut_one_kill_one_and_finish(
    hosts: Hosts, server: PrivatePostgres, redis_port: int, workers: list[subprocess.Popen]
) -> dict:
    here = f"redis://127.0.0.1:{redis_port}/0"

    def ran_on(host: int) -> int:
        return server.count(f"SELECT count(*) FROM jobs_job WHERE worker_name = 'host{host}'")

    wait_for(lambda: all(ran_on(i) >= 3 for i in (1, 2, 3)), timeout=60, every=0.2)
    hosts.cut(2)
    os.killpg(workers[2].pid, signal.SIGKILL)
    workers[2].wait(timeout=10)
    time.sleep(CUT_SECONDS)  # well past the heartbeat grace: both hosts' jobs are rescued
    on_server(server, "reconcile", redis_url=here)
    back_at = time.time()
    hosts.reconnect(2)
    on_server(server, "enqueue", (SLOW[0], LATER, SLOW[2]), redis_url=here)

    total = SLOW[1] + LATER

    def settled() -> bool:
        if server.count("SELECT count(*) FROM jobs_job WHERE status = 'succeeded'") == total:
            return True
        on_server(server, "reconcile", redis_url=here)
        return False

    wait_for(settled, timeout=120, every=1)
    assert [process.poll() for process in workers[:2]] == [None, None], "a worker died"
    effects = "SELECT count(DISTINCT slug), count(*) FROM tenants_tenant WHERE slug LIKE 'effect-%'"
    outcomes = "SELECT count(DISTINCT job_id), count(*) FROM jobs_joblog WHERE event = 'succeeded'"
    return {
        "effects": server.rows(effects),
        "outcomes": server.rows(outcomes),
        "rescued": server.count("SELECT count(*) FROM jobs_joblog WHERE event = 'rescued'"),
        "back": server.count(
            "SELECT count(*) FROM jobs_job WHERE worker_name = 'host2'"
            f" AND started_at > to_timestamp({back_at})"
        ),
    }


def _start_worker(
    hosts: Hosts, i: int, server: PrivatePostgres, redis_port: int, *, scheduler: bool
) -> subprocess.Popen:
    gateway = hosts.gateway(i)
    env = {
        **_worker_env(),
        "DATABASE_URL": server.url_at(gateway),
        "REDIS_URL": f"redis://{gateway}:{redis_port}/0",
        "CONVEYOR_HEARTBEAT_SECONDS": "1",
        "CONVEYOR_HEARTBEAT_GRACE": "2",
    }
    command = ["ip", "netns", "exec", hosts.namespace(i), sys.executable, "manage.py", "rqworker"]
    command += ["default", "--worker-class", "jobs.runtime.worker.FastWorker", "--name", f"host{i}"]
    command += ["--with-scheduler"] if scheduler else []
    return subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
