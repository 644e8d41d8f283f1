"""Every log line written while a job runs carries its id, kind, tenant and attempt, and the
trace and span ids of its attempt when an OpenTelemetry SDK records it (jobs.tracing)."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace

FIELDS = ("job_id", "kind", "tenant", "attempt")
TRACE_FIELDS = ("trace_id", "span_id")
_current: ContextVar[dict[str, str] | None] = ContextVar("conveyor_job", default=None)


@contextmanager
def job_logging(job_id: str, tenant: str, kind: str = "-") -> Iterator[None]:
    """Tag the log lines written inside the block with the job, its kind and tenant."""
    token = _current.set({"job_id": job_id, "kind": kind, "tenant": tenant, "attempt": "-"})
    try:
        yield
    finally:
        _current.reset(token)


def set_job_attempt(attempt: int) -> None:
    """Tag the rest of the block's lines with the attempt, known once the row is claimed."""
    tags = _current.get()
    if tags is not None:
        _current.set({**tags, "attempt": str(attempt)})


def install_record_factory() -> None:
    """Give the log records written inside a job `job_id`, `kind`, `tenant` and `attempt`.

    Records written outside a job get none of them (formatters default them to "-"): RQ logs
    with `extra={"job_id": …}`, which logging refuses when the record has that field already.
    """
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "conveyor", False):
        return

    def record_with_job(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        tags = _current.get()
        if tags is None:
            return record
        for name, value in tags.items():
            setattr(record, name, value)
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id, record.span_id = f"{span.trace_id:032x}", f"{span.span_id:016x}"
        return record

    record_with_job.conveyor = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record_with_job)


class PlainFormatter(logging.Formatter):
    """`time level logger message`; a line written inside a job also says which job
    (`job=… kind=… tenant=… attempt=…`, then `trace_id=… span_id=…` when traced)."""

    LABELS = {"job_id": "job", "trace_id": "trace_id", "span_id": "span_id"}

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(job_context)s%(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        tags = [
            f"{self.LABELS.get(name, name)}={getattr(record, name)}"
            for name in (*FIELDS, *TRACE_FIELDS)
            if hasattr(record, name)
        ]
        record.job_context = " ".join(tags) + " " if tags else ""
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            **{name: getattr(record, name, "-") for name in FIELDS},
            **{name: getattr(record, name) for name in TRACE_FIELDS if hasattr(record, name)},
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)
