"""What the OpenTelemetry hooks cost: the engine with its tracing calls, without them, and with
an SDK recording every span.

Three variants, measured in the same run, rounds alternating:
- `hooks, no SDK` — the product as shipped when the deployer installs no SDK (the API's proxy
  provider): the figure that must not move;
- `no hooks` — the baseline: the enqueue services undecorated (`__wrapped__`), `carrier` and
  `attempt_span` replaced by do-nothing functions, in the bench process and in the worker
  (started as `python -m bench.tracing worker …`);
- `SDK` — an SDK tracer provider with a batch processor whose exporter drops the spans: what
  recording costs, before any network.

Figures: single enqueue (`enqueue_job`, 300 in a row), bulk enqueue (10,000 with `enqueue_jobs`)
and the throughput of one idle default worker draining 2,000 `jobs.noop` (`--quick`: fewer).
"""

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bench.table import Figure

VARIANTS = ("hooks", "none", "sdk")
LABELS = {"hooks": "hooks, no SDK", "none": "no hooks", "sdk": "SDK, spans dropped"}


def _no_span(job: Any) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


def remove_hooks() -> None:
    """Take the tracing calls out of this process (the baseline)."""
    from jobs import tracing

    tracing.carrier = dict
    tracing.attempt_span = _no_span  # type: ignore[assignment]


class _Drop:
    """A span exporter that keeps nothing."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def install_sdk() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Drop()))  # type: ignore[arg-type]
    trace.set_tracer_provider(provider)
    return provider


@contextlib.contextmanager
def variant(name: str) -> Iterator[tuple[Callable[..., Any], Callable[..., Any]]]:
    """The enqueue services as they are in variant `name`, in this process."""
    from opentelemetry import trace
    from opentelemetry.util._once import Once

    from jobs import tracing
    from jobs.services import jobs

    single, bulk = jobs.enqueue_job, jobs.enqueue_jobs
    saved = tracing.carrier, tracing.attempt_span
    provider = None
    if name == "none":
        single, bulk = single.__wrapped__, bulk.__wrapped__  # type: ignore[attr-defined]
        remove_hooks()
    elif name == "sdk":
        provider = install_sdk()
    try:
        yield single, bulk
    finally:
        tracing.carrier, tracing.attempt_span = saved
        if provider is not None:
            provider.shutdown()
            # The API sets its provider once per process; the next variant has none again.
            trace._TRACER_PROVIDER = None
            trace._TRACER_PROVIDER_SET_ONCE = Once()


def measure(*, rounds: int, sizes: Any) -> list[Figure]:
    from bench import engine
    from jobs.transport import queueing

    tenant = engine.bench_tenant()
    engine.forget_jobs(tenant)
    redis = queueing.connection()
    redis.flushdb()
    single: dict[str, list[float]] = {name: [] for name in VARIANTS}
    bulk: dict[str, list[float]] = {name: [] for name in VARIANTS}
    drain: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_number in range(rounds):
        # Each round starts with another variant, so whatever the first one pays is shared.
        order = VARIANTS[round_number % 3 :] + VARIANTS[: round_number % 3]
        for name in order:
            with variant(name) as (enqueue_job, enqueue_jobs):
                started = time.perf_counter()
                for _ in range(sizes.single_jobs):
                    enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
                single[name].append(sizes.single_jobs / (time.perf_counter() - started))
                engine.forget_jobs(tenant)
                redis.flushdb()
                started = time.perf_counter()
                enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * sizes.bulk_jobs)
                bulk[name].append(sizes.bulk_jobs / (time.perf_counter() - started))
                engine.forget_jobs(tenant)
                redis.flushdb()
        for name in order:
            workers = tracked_worker(name)
            try:
                workers.start()
                drain[name].append(engine.tracked_drain(tenant, sizes.throughput_jobs))
            finally:
                workers.stop()
            redis.flushdb()
    return [
        hooks_cost(rounds=rounds, job_seconds=1 / statistics.median(drain["none"])),
        *_pair("single enqueue (enqueue_job)", "jobs/s", single),
        *_pair(f"bulk enqueue of {sizes.bulk_jobs:,} (enqueue_jobs)", "jobs/s", bulk),
        *_pair("tracked no-op throughput, default worker, 1 process", "jobs/s", drain),
    ]


def hooks_cost(*, rounds: int, job_seconds: float, calls: int = 20_000) -> Figure:
    """Microseconds the hooks add to one job without an SDK (one enqueue, one attempt), beside
    the time of a whole tracked no-op job measured above (the no-hooks worker's throughput)."""
    from jobs import tracing
    from jobs.models import Job

    @tracing.enqueue_span
    def enqueue() -> None:
        tracing.carrier()

    row = Job(queue="default", kind="jobs.noop")
    spent = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            enqueue()
            with tracing.attempt_span(row):
                pass
        spent.append((time.perf_counter() - started) / calls * 1e6)
    return Figure(
        "tracing hooks per job (enqueue + attempt), no SDK",
        "µs",
        spent,
        "a whole tracked no-op job",
        [job_seconds * 1e6],
        higher_is_better=False,
    )


def _pair(what: str, unit: str, values: dict[str, list[float]]) -> list[Figure]:
    return [
        Figure(
            f"{what}, tracing {LABELS['hooks']}",
            unit,
            values["hooks"],
            f"tracing {LABELS['none']}",
            values["none"],
            target="≥ 0.95×",
        ),
        Figure(
            f"{what}, tracing {LABELS['sdk']}",
            unit,
            values["sdk"],
            f"tracing {LABELS['none']}",
            values["none"],
        ),
    ]


def tracked_worker(name: str) -> Any:
    """One idle tracked worker in a tracing variant (`python -m bench.tracing worker …`)."""
    from bench import engine

    class Workers(engine.Workers):
        def command(self) -> list[str]:
            rqworker = super().command()[3:]  # after `python manage.py rqworker`
            return [sys.executable, "-m", "bench.tracing", "worker", name, *rqworker]

    return Workers("tracked", 1)


def run_worker(name: str, arguments: list[str]) -> None:
    """`manage.py rqworker <arguments>` in tracing variant `name`."""
    import django
    from django.core.management import call_command

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    if name == "none":
        remove_hooks()
    elif name == "sdk":
        install_sdk()
    call_command("rqworker", *arguments)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "worker" or sys.argv[2] not in VARIANTS:
        sys.exit(f"usage: python -m bench.tracing worker {{{','.join(VARIANTS)}}} QUEUE [options]")
    run_worker(sys.argv[2], sys.argv[3:])
