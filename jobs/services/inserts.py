"""Writing new jobs fast: COPY for many at once, one statement for one job and its log line.

`bulk_create` spends most of its time preparing each value of each row in Python; COPY sends
the rows as they are. A single job and its `enqueued` log line go in one statement, so a job
enqueued outside a transaction costs one round trip to PostgreSQL.
"""

import functools
import json
from collections.abc import Callable
from datetime import datetime
from operator import attrgetter
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection
from django.db.models import Field, JSONField, Model
from django.db.models.fields import AutoFieldMixin

from jobs.models import Job, JobLog

_LOG = JobLog._meta.db_table
_LOG_COLUMNS = "job_id, tenant_id, created_at, level, event, message, data"


def _json(field: Field) -> Callable[[Any], str]:
    encoder = getattr(field, "encoder", None) or DjangoJSONEncoder
    return encoder().encode


def copy_jobs(jobs: list[Job]) -> None:
    """Insert new jobs with COPY; like bulk_create, `auto_now_add` fields are set on each."""
    copy_rows(Job, jobs)


def copy_rows[M: Model](model: type[M], objs: list[M]) -> None:
    """Insert new rows of `model` with COPY, as `copy_jobs` does; an auto-numbered primary key
    is left to the database (and not read back)."""
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, AutoFieldMixin)]
    stamped = [f for f in fields if getattr(f, "auto_now", 0) or getattr(f, "auto_now_add", 0)]
    encoded = [(i, _json(f)) for i, f in enumerate(fields) if isinstance(f, JSONField)]
    values = attrgetter(*(field.attname for field in fields))
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    statement = f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for obj in objs:
            for field in stamped:
                field.pre_save(obj, True)
            row = list(values(obj))
            for index, encode in encoded:
                if row[index] is not None:
                    row[index] = encode(row[index])
            copy.write_row(row)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias


def log_many(
    jobs: list[Job], event: str, message: str, data: dict[str, Any], *, at: datetime | None = None
) -> None:
    """One log line per job, all alike, with COPY; dated `at`, or each job's creation."""
    if not jobs:
        return
    text = json.dumps(data, cls=DjangoJSONEncoder)
    alike = (str(JobLog.Level.INFO), str(event), message, text)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {_LOG} ({_LOG_COLUMNS}) FROM STDIN") as copy,
    ):
        for job in jobs:
            copy.write_row((job.pk, job.tenant_id, at or job.created_at, *alike))


@functools.cache
def _insert_job_sql(durable: bool) -> str:
    """The statement `insert_job` runs, written once: compiling an INSERT costs more than it."""
    fields = Job._meta.concrete_fields
    table = connection.ops.quote_name(Job._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    values = ", ".join(["%s"] * len(fields))
    fast = "" if durable else ", settings AS (SELECT set_config('synchronous_commit', 'off', true))"
    return (
        f"WITH job AS (INSERT INTO {table} ({columns}) VALUES ({values})"
        f" RETURNING id, tenant_id, created_at){fast} "
        f"INSERT INTO {_LOG} ({_LOG_COLUMNS}) "
        f"SELECT id, tenant_id, created_at, %s, %s, %s, %s::jsonb "
        f"FROM job{', settings' if fast else ''}"
    )


def insert_job(job: Job, *, message: str, data: dict[str, Any], durable: bool) -> bool:
    """Insert the job and its `enqueued` log line in one statement; False if its key is taken.

    Outside a transaction the statement is its own. Unless `durable`, that commit does not
    wait for the WAL flush (a database crash may forget the last moment's enqueues; the job is
    then never run, and was never started). The values are prepared as Django's INSERT
    compiler prepares them (`pre_save`, then `get_db_prep_save`).
    """
    params = [
        field.get_db_prep_save(field.pre_save(job, True), connection=connection)
        for field in Job._meta.concrete_fields
    ]
    log = [JobLog.Level.INFO, JobLog.Event.ENQUEUED, message, json.dumps(data)]
    try:
        with connection.cursor() as cursor:
            cursor.execute(_insert_job_sql(durable), [*params, *log])
    except IntegrityError:
        if not job.idempotency_key:
            raise
        return False
    job._state.adding = False
    job._state.db = connection.alias
    return True
