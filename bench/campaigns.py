"""Campaign throughput: SMS sends per second with the rate limit off, on the memory provider,
or on a provider that takes a given time to answer.

    python -m bench.campaigns [--recipients N] [--rounds R] [--workers W] [--latency-ms MS]

With `--latency-ms` (e.g. 100) the workers send through the generic HTTP provider to a local
server that answers each POST after that many milliseconds, as a real provider's API would;
CONVEYOR_CAMPAIGN_SEND_CONCURRENCY (20 by default) calls are made at once per batch job.

Needs DATABASE_URL and REDIS_URL (a migrated database; the memory provider's outbox list in
that Redis database is cleared) and starts W `manage.py rqworker messaging` processes (2 by
default) with SMS_PROVIDER=memory. Each round starts a campaign to N contacts (5,000 by
default) of a "bench-campaigns" tenant whose SMS limit is 1,000,000/s, and counts from its start
(snapshot and batching included) to its end; a small warm-up campaign runs first.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench import standalone

standalone.setup(create_database=False)

from django.conf import settings  # noqa: E402

from bench.table import Figure  # noqa: E402
from communications.models import Campaign, Contact  # noqa: E402
from communications.providers import MEMORY_OUTBOX_KEY  # noqa: E402
from communications.services.campaigns import create_campaign  # noqa: E402
from jobs.transport import queueing  # noqa: E402
from tenants.models import Tenant  # noqa: E402

BASE_DIR = Path(settings.BASE_DIR)
UNLIMITED = "1000000/s"


def bench_tenant(recipients: int) -> Tenant:
    """The bench tenant with `recipients` contacts tagged "bench" (made once, then reused)."""
    tenant, _ = Tenant.objects.get_or_create(slug="bench-campaigns", defaults={"name": "Bench"})
    tenant.rate_limits = {"sms": UNLIMITED}
    tenant.save(update_fields=["rate_limits"])
    have = Contact.objects.for_tenant(tenant).count()
    Contact.objects.bulk_create(
        [
            Contact(tenant=tenant, name=f"Bench {n}", phone=f"+1415{n:07d}", tags=["bench"])
            for n in range(have, recipients)
        ],
        batch_size=2000,
    )
    return tenant


@contextmanager
def slow_provider(latency: float) -> Iterator[str]:
    """A local HTTP provider answering `{"id": …}` after `latency` seconds; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(latency)
            body = json.dumps({"id": f"bench-{time.monotonic_ns()}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # every worker's window connects at once

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/send"
    finally:
        server.shutdown()
        server.server_close()


def start_workers(count: int, provider_url: str = "") -> list[subprocess.Popen]:
    env = {**os.environ, "SMS_PROVIDER": "memory", "LOG_LEVEL": "WARNING"}
    if provider_url:
        env |= {"SMS_PROVIDER": "http", "SMS_HTTP_URL": provider_url}
    command = [sys.executable, "manage.py", "rqworker", "messaging"]
    return [
        subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
        for _ in range(count)
    ]


def run_campaign(tenant: Tenant, recipients: int, *, timeout: float = 600) -> float:
    """Sends per second of one campaign to the first `recipients` contacts."""
    queueing.connection().delete(MEMORY_OUTBOX_KEY)
    contact_ids = list(
        Contact.objects.for_tenant(tenant).order_by("pk").values_list("pk", flat=True)
    )[:recipients]
    campaign = create_campaign(
        tenant=tenant,
        name=f"Bench {recipients}",
        channel="sms",
        template="welcome",
        contact_ids=contact_ids,
    )
    deadline = time.monotonic() + timeout
    while Campaign.objects.filter(pk=campaign.pk, finished_at__isnull=True).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"campaign {campaign.pk} did not finish in {timeout} s")
        time.sleep(0.1)
    campaign.refresh_from_db()
    assert campaign.sent == recipients, f"sent {campaign.sent} of {recipients}"
    assert campaign.started_at is not None
    assert campaign.finished_at is not None
    return campaign.sent / (campaign.finished_at - campaign.started_at).total_seconds()


def measure(
    *, rounds: int = 3, recipients: int = 5000, workers: int = 2, latency_ms: int = 0
) -> list[Figure]:
    """Campaign sends per second with the rate limit off, on `workers` worker processes."""
    tenant = bench_tenant(recipients)
    with slow_provider(latency_ms / 1000) as url:
        processes = start_workers(workers, url if latency_ms else "")
        try:
            run_campaign(tenant, min(recipients, 200))  # warm-up: workers up, caches filled
            rates = [run_campaign(tenant, recipients) for _ in range(rounds)]
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=60)
    provider = f"a provider answering in {latency_ms} ms" if latency_ms else "memory provider"
    return [
        Figure(
            name=f"campaign sends, {recipients:,} recipients, {workers} workers, {provider}",
            unit="sends/s",
            values=rates,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-ms", type=int, default=0, help="0: the memory provider")
    args = parser.parse_args()
    figures = measure(
        rounds=args.rounds,
        recipients=args.recipients,
        workers=args.workers,
        latency_ms=args.latency_ms,
    )
    for figure in figures:
        low, high = min(figure.values), max(figure.values)
        print(f"{figure.name:<64} {figure.median:8.0f} {figure.unit}  ({low:.0f}–{high:.0f})")


if __name__ == "__main__":
    main()
