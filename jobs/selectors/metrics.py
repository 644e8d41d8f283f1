"""Job totals for /metrics: counters and timing histograms kept as totals in Redis.

The counters (jobs enqueued, succeeded, failed, retried, canceled by queue and kind) and the
histograms (wait enqueued → started, run started → finished, by queue and kind) are totals kept
in Redis, so they hold across every web process and survive restarts and clean-up. Each read
folds the jobs that finished or were created since the previous one into them (range queries on
the `finished_at` and `created_at` indexes, and on `joblog_rare_event_idx` for retries) and adds
the last minute's rows live: its cost follows the interval's jobs, not the table's size.
Counting starts an hour before the first read; an emptied Redis is a counter reset.
"""

from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone
from redis.exceptions import WatchError

from jobs.models import Job, JobLog
from jobs.transport import queueing
from jobs.transport.queueing import as_text

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
COUNTERS = ("enqueued", "succeeded", "failed", "retried", "canceled")
_OUTCOMES = ("succeeded", "failed", "canceled")
_RETRY_EVENTS = (JobLog.Event.RETRY_SCHEDULED, JobLog.Event.STOPPED, JobLog.Event.RESCUED)
_JOB, _LOG = Job._meta.db_table, JobLog._meta.db_table


def _bucket_sql(seconds: str, prefix: str) -> str:
    buckets = ", ".join(
        f"count(*) FILTER (WHERE {seconds} <= {bound}) AS {prefix}_{index}"
        for index, bound in enumerate(BUCKETS)
    )
    total = f"count({seconds}) AS {prefix}_count, coalesce(sum({seconds}), 0) AS {prefix}_sum"
    return f"{buckets}, {total}"


_WAIT = "EXTRACT(EPOCH FROM started_at - enqueued_at)"
_RUN = "EXTRACT(EPOCH FROM finished_at - started_at)"

# Jobs that finished in (after, until], through the finished_at index: outcomes and timings.
_FINISHED_SQL = f"""
SELECT queue, kind,
    {", ".join(f"count(*) FILTER (WHERE status = '{status}') AS {status}" for status in _OUTCOMES)},
    {_bucket_sql(_WAIT, "wait")},
    {_bucket_sql(_RUN, "run")}
FROM {_JOB} WHERE finished_at > %(after)s AND finished_at <= %(until)s
GROUP BY queue, kind
"""
# Jobs created in (after, until], through the created_at index.
_CREATED_SQL = f"""
SELECT queue, kind, count(*) AS enqueued FROM {_JOB}
WHERE created_at > %(after)s AND created_at <= %(until)s GROUP BY queue, kind
"""
# Retries logged after the log id `after` and before `before`, through (event, -id).
_RETRIED_SQL = f"""
SELECT job.queue, job.kind, count(*) AS retried, max(log.id) AS last
FROM {_LOG} log JOIN {_JOB} job ON job.id = log.job_id
WHERE log.event = ANY(%(events)s) AND log.id > %(after)s AND log.id < %(before)s
GROUP BY job.queue, job.kind
"""
# The first retry logged after `after` that is younger than `until`: folding stops before it.
_FIRST_LATE_RETRY_SQL = f"""
SELECT min(id) FROM {_LOG}
WHERE event = ANY(%(events)s) AND id > %(after)s AND created_at > %(until)s
"""
_LAST_LOG_SQL = f"SELECT coalesce(max(id), 0) FROM {_LOG} WHERE created_at <= %(until)s"

# The counters are totals kept in Redis, so they hold across processes and stay monotonic when
# clean-up deletes rows. Each scrape folds the rows that ended since the last fold into them
# (indexed range queries over a scrape interval of rows, however big the table) and adds the
# rows of the last SETTLE seconds live, as those may still be committing.
SETTLE = timedelta(seconds=60)
FIRST_LOOKBACK = timedelta(hours=1)  # the first scrape starts counting from an hour ago
STEP = timedelta(hours=1)  # at most this much is folded per scrape, after a long pause
TOTALS_KEY = "conveyor:metrics:totals"
MARK_KEY = "conveyor:metrics:mark"
_FAR = 2**62


def job_totals() -> list[dict[str, Any]]:
    """Per queue and kind: jobs enqueued, succeeded, failed, canceled, retried; wait and run."""
    redis = queueing.connection()
    now = timezone.now()
    _fold(redis, now=now)
    with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(TOTALS_KEY)
        pipe.hgetall(MARK_KEY)
        stored, mark = pipe.execute()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for field_name, value in stored.items():
        queue, kind, name = as_text(field_name).split("|", 2)
        _row(rows, queue, kind)[name] = float(value) if name.endswith("_sum") else int(value)
    at, log_id = _mark(mark, now=now)
    if now - SETTLE - at <= STEP:  # caught up: add what is too recent to fold
        for counts in _counted(after=at, until=now + STEP, after_log=log_id, before_log=_FAR):
            counts.pop("last", None)
            _add(_row(rows, counts.pop("queue"), counts.pop("kind")), counts)
    return [rows[key] for key in sorted(rows)]


def _row(rows: dict[tuple[str, str], dict[str, Any]], queue: str, kind: str) -> dict[str, Any]:
    if (queue, kind) not in rows:
        zero: dict[str, Any] = dict.fromkeys((*COUNTERS, "wait_count", "run_count"), 0)
        for prefix in ("wait", "run"):
            zero.update({f"{prefix}_{index}": 0 for index in range(len(BUCKETS))})
            zero[f"{prefix}_sum"] = 0.0
        rows[queue, kind] = {"queue": queue, "kind": kind, **zero}
    return rows[queue, kind]


def _add(row: dict[str, Any], counts: dict[str, Any]) -> None:
    for name, value in counts.items():
        row[name] += float(value) if name.endswith("_sum") else int(value)


def _mark(stored: dict, *, now: datetime) -> tuple[datetime, int]:
    """Where the totals stop: a time for job rows, a log id for retries."""
    mark = {as_text(name): as_text(value) for name, value in stored.items()}
    if not mark:
        return now - FIRST_LOOKBACK, 0
    return datetime.fromisoformat(mark["at"]), int(mark["log_id"])


def _fold(redis: Any, *, now: datetime) -> None:
    """Add the rows between the stored mark and SETTLE ago to the totals, once across processes.

    WATCH makes it optimistic: when another process folded meanwhile, this one adds nothing.
    """
    with redis.pipeline() as pipe:
        try:
            pipe.watch(MARK_KEY)
            stored = pipe.hgetall(MARK_KEY)
            at, log_id = _mark(stored, now=now)
            if not stored:
                log_id = _one(_LAST_LOG_SQL, until=at)
            until = min(now - SETTLE, at + STEP)
            if until <= at and stored:
                return
            late = _one(
                _FIRST_LATE_RETRY_SQL, events=list(_RETRY_EVENTS), after=log_id, until=until
            )
            counted = _counted(after=at, until=until, after_log=log_id, before_log=late or _FAR)
            pipe.multi()
            for counts in counted:
                queue, kind = counts.pop("queue"), counts.pop("kind")
                log_id = max(log_id, counts.pop("last", None) or 0)
                for name, value in counts.items():
                    field_name = f"{queue}|{kind}|{name}"
                    if name.endswith("_sum"):
                        pipe.hincrbyfloat(TOTALS_KEY, field_name, float(value))
                    elif value:
                        pipe.hincrby(TOTALS_KEY, field_name, int(value))
            pipe.hset(MARK_KEY, mapping={"at": until.isoformat(), "log_id": log_id})
            pipe.execute()
        except WatchError:
            return


def _counted(
    *, after: datetime, until: datetime, after_log: int, before_log: int
) -> list[dict[str, Any]]:
    """Counts per queue and kind of the jobs finished and created, and retries, in a range."""
    window = {"after": after, "until": until}
    retries = {"events": list(_RETRY_EVENTS), "after": after_log, "before": before_log}
    return [
        *_query(_FINISHED_SQL, window),
        *_query(_CREATED_SQL, window),
        *_query(_RETRIED_SQL, retries),
    ]


def _query(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _one(sql: str, **params: Any) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None
