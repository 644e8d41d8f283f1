"""OpenTelemetry: an API enqueue is a producer span in the caller's trace, every attempt of its
job a consumer span in the same trace (child of the enqueue, linked to it), read back from the
SDK's in-memory exporter after real workers ran the job; log lines carry the ids."""

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once
from rest_framework.test import APIClient

from jobs import tracing
from jobs.log_context import PlainFormatter
from jobs.models import Job
from jobs.services.jobs import enqueue_job, enqueue_jobs
from tests.jobs.conftest import status_of

CALLER_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CALLER_SPAN = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{CALLER_TRACE:032x}-{CALLER_SPAN:016x}-01"


def _reset_global_provider() -> None:
    # The API sets its global provider once per process; tests put it back as it was (the
    # OpenTelemetry project's own tests do the same), so other tests run without an SDK.
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()
    _reset_global_provider()


def _attrs(span: ReadableSpan) -> Mapping[str, Any]:
    return span.attributes or {}


def _parent(span: ReadableSpan) -> int:
    assert span.parent is not None
    return span.parent.span_id


def _of(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind == kind]


def test_an_api_enqueue_and_every_attempt_of_its_job_are_spans_of_the_callers_trace(
    spans, api_client: APIClient, agent, tenant, work_until
):
    api_client.force_authenticate(agent)

    answer = api_client.post(
        "/api/v1/jobs/",
        {"kind": "jobs.fail", "payload": {"times": 1}},
        format="json",
        headers={"traceparent": TRACEPARENT},
    )
    job = Job.objects.get(pk=answer.json()["id"])
    work_until(lambda: status_of(job) == Job.Status.SUCCEEDED)

    [send] = _of(spans, SpanKind.PRODUCER)
    attempts = sorted(
        _of(spans, SpanKind.CONSUMER), key=lambda s: _attrs(s)["conveyor.job.attempt"]
    )
    assert answer.status_code == 202
    assert send.name == "send default"
    assert (send.context.trace_id, _parent(send)) == (CALLER_TRACE, CALLER_SPAN)
    assert _attrs(send)["messaging.message.id"] == str(job.pk)
    assert _attrs(send)["messaging.operation.type"] == "send"
    assert _attrs(send)["conveyor.tenant"] == tenant.slug
    assert job.trace_context["traceparent"].split("-")[1:3] == [
        f"{CALLER_TRACE:032x}",
        f"{send.context.span_id:016x}",
    ]
    assert [span.name for span in attempts] == ["process default", "process default"]
    for number, span in enumerate(attempts, start=1):
        assert span.context.trace_id == CALLER_TRACE
        assert _parent(span) == send.context.span_id
        assert [link.context.span_id for link in span.links] == [send.context.span_id]
        assert _attrs(span)["messaging.system"] == "rq"
        assert _attrs(span)["messaging.destination.name"] == "default"
        assert _attrs(span)["messaging.message.id"] == str(job.pk)
        assert _attrs(span)["conveyor.job.kind"] == "jobs.fail"
        assert _attrs(span)["conveyor.tenant"] == tenant.slug
        assert _attrs(span)["conveyor.job.attempt"] == number
    first, second = attempts
    assert _attrs(first)["conveyor.job.outcome"] == "retrying"
    assert first.status.status_code == StatusCode.ERROR
    assert _attrs(first)["error.type"] == "RetryableError"
    assert _attrs(second)["conveyor.job.outcome"] == "succeeded"
    assert second.status.status_code == StatusCode.UNSET


def test_an_enqueue_outside_any_trace_starts_one_and_a_bulk_enqueue_is_one_send(
    spans, tenant, work_until
):
    alone = enqueue_job(tenant=tenant, kind="jobs.fail", payload={"permanent": True})
    many = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 3)
    work_until(lambda: all(status_of(job) in Job.FINISHED for job in [alone, *many]))

    single, bulk = sorted(
        _of(spans, SpanKind.PRODUCER),
        key=lambda span: _attrs(span).get("messaging.batch.message_count", 1),
    )
    processed = _of(spans, SpanKind.CONSUMER)
    assert single.parent is None
    assert bulk.parent is None
    assert single.context.trace_id != bulk.context.trace_id
    assert _attrs(bulk)["messaging.batch.message_count"] == 3
    assert sorted(_parent(span) for span in processed) == sorted(
        [single.context.span_id, *[bulk.context.span_id] * 3]
    )
    [failed] = [span for span in processed if _parent(span) == single.context.span_id]
    assert _attrs(failed)["conveyor.job.outcome"] == "failed"
    assert failed.status.status_code == StatusCode.ERROR


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(PlainFormatter().format(record))


def test_a_line_logged_inside_a_traced_job_carries_the_trace_and_span_ids(
    spans, tenant, work_until
):
    handler = _Lines()
    kinds_log = logging.getLogger("tests.jobs.kinds")
    kinds_log.addHandler(handler)
    kinds_log.setLevel(logging.INFO)
    try:
        job = enqueue_job(tenant=tenant, kind="tests.log_and_retry", payload={})
        work_until(lambda: status_of(job) == Job.Status.SUCCEEDED)
    finally:
        kinds_log.removeHandler(handler)
        kinds_log.setLevel(logging.NOTSET)

    attempts = {
        _attrs(span)["conveyor.job.attempt"]: span for span in _of(spans, SpanKind.CONSUMER)
    }
    [first_line, *_] = [line for line in handler.lines if "working on it" in line]
    first = attempts[1].context
    assert (
        f"trace_id={first.trace_id:032x} span_id={first.span_id:016x} working on it" in first_line
    )


def test_without_an_sdk_nothing_is_recorded_or_stored(tenant):
    assert not tracing.active()

    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})

    assert job.trace_context == {}
    assert Job.objects.get(pk=job.pk).trace_context == {}
