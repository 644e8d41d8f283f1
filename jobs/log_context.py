"""Every log line written while a job runs carries its id and tenant."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_current: ContextVar[tuple[str, str] | None] = ContextVar("conveyor_job", default=None)


@contextmanager
def job_logging(job_id: str, tenant: str) -> Iterator[None]:
    """Tag the log lines written inside the block with the job and tenant."""
    token = _current.set((job_id, tenant))
    try:
        yield
    finally:
        _current.reset(token)


def install_record_factory() -> None:
    """Give every log record `job_id` and `tenant` attributes ("-" outside a job)."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "conveyor", False):
        return

    def record_with_job(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.job_id, record.tenant = _current.get() or ("-", "-")
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
            "job_id": getattr(record, "job_id", "-"),
            "tenant": getattr(record, "tenant", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)
