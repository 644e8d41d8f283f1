"""Every log line written while a job runs carries its id, kind, tenant and attempt."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

FIELDS = ("job_id", "kind", "tenant", "attempt")
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
        for name, value in (_current.get() or {}).items():
            setattr(record, name, value)
        return record

    record_with_job.conveyor = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record_with_job)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            **{name: getattr(record, name, "-") for name in FIELDS},
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)
