"""OpenTelemetry spans of the job engine, through the API alone (the SDK is the deployer's choice).

Every enqueue is a producer span (`send <queue>`); the W3C trace context of that span is stored
with the job (`Job.trace_context`), so every attempt, on any worker and after any retry, is a
consumer span (`process <queue>`) in the same trace: a child of the enqueue, linked to it. An
API request that carries a `traceparent` header (or that a Django instrumentation traces)
is the enqueue's parent, so its trace continues into its jobs.

Without an SDK the global tracer provider is the API's proxy or no-op one: then each hook returns
after one check and stores nothing, so the engine pays nothing measurable (`make bench`).
"""

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.http import HttpRequest, HttpResponse
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, ProxyTracerProvider, SpanKind, Status, StatusCode

from jobs.models import Job

SYSTEM = "rq"
# Outcomes of an attempt that end its span in error (a retry is an error of this attempt).
_ERRORS = frozenset({Job.Status.FAILED, Job.Status.RETRYING})


def active() -> bool:
    """True once the deployer installed an SDK tracer provider."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (ProxyTracerProvider, trace.NoOpTracerProvider))


def _tracer() -> trace.Tracer:
    return _tracer_of(trace.get_tracer_provider())


@functools.lru_cache(maxsize=4)
def _tracer_of(provider: trace.TracerProvider) -> trace.Tracer:
    return provider.get_tracer("conveyor.jobs")


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`, …), or {} outside a trace."""
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def enqueue_span[**P, R](enqueue: Callable[P, R]) -> Callable[P, R]:
    """Run an enqueue service inside a producer span; the jobs it builds store its context."""

    @functools.wraps(enqueue)
    def traced(*args: P.args, **kwargs: P.kwargs) -> R:
        if not active():
            return enqueue(*args, **kwargs)
        with _tracer().start_as_current_span("send", kind=SpanKind.PRODUCER) as span:
            result = enqueue(*args, **kwargs)
            jobs: list[Any] = result if isinstance(result, list) else [result]
            if jobs and isinstance(jobs[0], Job):
                _describe_send(span, jobs)
            return result

    return traced


def _describe_send(span: trace.Span, jobs: list[Job]) -> None:
    first = jobs[0]
    span.update_name(f"send {first.queue}")
    span.set_attributes(
        {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "enqueue",
            "messaging.destination.name": first.queue,
            "conveyor.tenant": first.tenant.slug,
            "conveyor.job.kind": first.kind,
            "conveyor.job.priority": first.priority,
        }
    )
    if len(jobs) == 1:
        span.set_attribute("messaging.message.id", str(first.pk))
    else:
        span.set_attribute("messaging.batch.message_count", len(jobs))


@contextmanager
def attempt_span(job: Job) -> Iterator[None]:
    """One attempt of a claimed job as a consumer span in its enqueue's trace.

    The outcome is read from the job when the block ends (the runner sets `job.status`)."""
    if not active():
        yield
        return
    parent = propagate.extract(job.trace_context) if job.trace_context else otel_context.Context()
    enqueued = trace.get_current_span(parent).get_span_context()
    with _tracer().start_as_current_span(
        f"process {job.queue}",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=[Link(enqueued)] if enqueued.is_valid else None,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "execute",
            "messaging.destination.name": job.queue,
            "messaging.message.id": str(job.pk),
            "conveyor.tenant": job.tenant.slug,
            "conveyor.job.kind": job.kind,
            "conveyor.job.attempt": job.attempt,
            "conveyor.job.max_attempts": job.max_attempts,
        },
    ) as span:
        yield
        span.set_attribute("conveyor.job.outcome", str(job.status))
        if job.status in _ERRORS:
            span.set_attribute("error.type", job.error_type or "JobFailed")
            span.set_status(Status(StatusCode.ERROR, job.error_message[:200]))


def flush(timeout_millis: int = 5000) -> None:
    """Export the spans an SDK still holds (before a forked work horse exits)."""
    if active():
        force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
        if force_flush is not None:
            force_flush(timeout_millis)


class TraceContextMiddleware:
    """Continue the trace of a request that carries W3C trace headers, when nothing else does.

    With a Django instrumentation installed the request already has a span; this does nothing.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        header = request.headers.get("traceparent")
        if not header or trace.get_current_span().get_span_context().is_valid or not active():
            return self.get_response(request)
        token = otel_context.attach(propagate.extract(request.headers))
        try:
            return self.get_response(request)
        finally:
            otel_context.detach(token)
