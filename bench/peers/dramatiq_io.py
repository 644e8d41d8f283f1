"""Dramatiq peer for the I/O figure: N jobs that each wait MS milliseconds, one worker process
with C threads. Prints {"rate": jobs per second from the first start to the last finish}.

    BENCH_REDIS_URL=redis://… python dramatiq_io.py N C MS   (the Python with dramatiq)
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

URL = os.environ["BENCH_REDIS_URL"]  # the broker is set up at import, in driver and worker
dramatiq.set_broker(RedisBroker(url=URL))
SPANS = "bench-io:spans"


@dramatiq.actor(queue_name="bench-io", max_retries=0)
def wait(ms: int) -> None:
    started = time.time()
    time.sleep(ms / 1000)
    redis.Redis.from_url(URL).rpush(SPANS, json.dumps([started, time.time()]))


def main(jobs: int, threads: int, ms: int) -> None:
    client = redis.Redis.from_url(URL)
    client.delete(SPANS)
    for _ in range(jobs):
        wait.send(ms)
    here = Path(__file__).parent
    command = [sys.executable, "-m", "dramatiq", "dramatiq_io", "--processes", "1"]
    worker = subprocess.Popen(
        [*command, "--threads", str(threads)],
        cwd=here,
        env=os.environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while client.llen(SPANS) < jobs:
            if time.monotonic() > deadline:
                raise TimeoutError("dramatiq did not finish")
            time.sleep(0.05)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    spans = [json.loads(item) for item in client.lrange(SPANS, 0, -1)]
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    print(json.dumps({"rate": jobs / (last - first)}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
