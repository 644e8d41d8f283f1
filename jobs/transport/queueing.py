"""The one module that hands jobs to RQ and reads RQ's state: Redis is the transport only."""

import contextlib
import functools
import json
import logging
import math
import pickle
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import django_rq
from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.test.signals import setting_changed
from django.urls import URLPattern
from django.utils import timezone
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry, get_current_job
from rq import Worker as RQWorker
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry, clean_registries
from rq.scheduler import RQScheduler
from rq.scripts import release_lock
from rq.utils import as_text, utcformat
from rq.worker_registration import clean_worker_registry

from jobs.models import Job, Priority
from jobs.transport import fair

logger = logging.getLogger(__name__)

EXECUTE = "jobs.runtime.runner.execute"
# What RQ jobs enqueued by earlier releases name; workers run them as EXECUTE.
LEGACY_EXECUTE = ("jobs.runner.execute",)
PAUSED_KEY = fair.PAUSED_QUEUES_KEY
CANCEL_KEY = "conveyor:cancel:{}"
CANCEL_FLAG_TTL = 7 * 24 * 3600
# Kept in Redis for good: when it is gone, so is everything else (restarted empty, flushed).
MARKER_KEY = "conveyor:marker"


_connection: Redis | None = None


def connection() -> Redis:
    """The shared Redis connection (pooled; a new pool after fork or a settings change)."""
    global _connection
    if _connection is None:
        _connection = django_rq.get_connection("default")
    return _connection


@receiver(setting_changed)
def _forget_connection(*, setting: str, **kwargs: Any) -> None:
    global _connection
    if setting == "RQ_QUEUES":
        _connection = None


def rq_queue_name(queue: str, priority: str = Priority.NORMAL) -> str:
    """The RQ queue serving `queue` at `priority`: `email.critical`, `email`, `email.low`…"""
    return queue if priority == Priority.NORMAL else f"{queue}.{priority}"


def rq_queue_names(queue: str) -> list[str]:
    """Every RQ queue of `queue`, highest priority first."""
    return [rq_queue_name(queue, priority) for priority in settings.CONVEYOR_PRIORITIES]


def logical_queue(rq_name: str) -> str:
    return rq_name.split(".", 1)[0]


def get_rq_queue(name: str) -> Queue:
    return django_rq.get_queue(name, connection=connection())


def retry_later(seconds: float) -> Retry:
    """What `execute` returns to have RQ deliver the same job again in `seconds`."""
    return Retry(max=10**9, interval=max(0, math.ceil(seconds)))


_worker_name = ""


def set_worker_name(name: str) -> None:
    """FastWorker runs jobs without RQ's job stack: it names itself here instead."""
    global _worker_name
    _worker_name = name


def current_worker_name() -> str:
    if _worker_name:
        return _worker_name
    rq_job = get_current_job()
    return (rq_job.worker_name or "") if rq_job else ""


def mark_for_handover(job: Job, now: datetime) -> None:
    """Give a row the status it has once in Redis (queued, or scheduled for later): its writer
    saves it so, and `push` follows after the commit. No second write is needed: if Redis
    refuses, `push` puts the row back to pending; if the process dies first, the reconciler
    finds its RQ job missing and hands it over.
    """
    later = job.scheduled_at is not None and job.scheduled_at > now
    job.status = Job.Status.SCHEDULED if later else Job.Status.QUEUED
    job.enqueued_at = now


def push(job: Job) -> bool:
    """Hand one row (marked for handover, or retrying) to Redis; see `push_many`."""
    return push_many([job]) == 1


def push_many(jobs: Iterable[Job]) -> int:
    """Hand rows to Redis in one pipeline; returns how many went (all, or none if Redis is down).

    Each row says queued or scheduled already (`mark_for_handover`), or retrying. When Redis
    refuses, queued and scheduled rows go back to pending, for the reconciler to hand over.
    """
    jobs = list(jobs)
    if not jobs:
        return 0
    now = timezone.now()
    try:
        # Not a MULTI: a worker may start the first jobs while the last are still on their way.
        with connection().pipeline(transaction=False) as pipe:
            by_queue: dict[str, list[Job]] = {}
            for job in jobs:
                if job.scheduled_at and job.scheduled_at > now:
                    _schedule(job, pipe)
                else:
                    by_queue.setdefault(rq_queue_name(job.queue, job.priority), []).append(job)
            for name, group in by_queue.items():
                pipe.sadd(Queue.redis_queues_keys, Queue.redis_queue_namespace_prefix + name)
                if len(group) < MANY:
                    for job in group:
                        _enqueue(job, name, now, pipe)
                else:
                    _enqueue_many(group, name, now, pipe)
            for queue in dict.fromkeys(logical_queue(name) for name in by_queue):
                fair.wake(pipe, queue)
            pipe.execute()
    except RedisError as error:
        logger.warning("redis refused %d job(s), left pending: %s", len(jobs), error)
        _unmark(jobs)
        return 0
    return len(jobs)


def push_on_commit(jobs: Iterable[Job]) -> None:
    """Push the rows once the surrounding transaction commits (at once outside one); nothing
    if it rolls back."""
    jobs = list(jobs)
    transaction.on_commit(lambda: push_many(jobs))


def _unmark(jobs: list[Job]) -> None:
    handed = [Job.Status.QUEUED, Job.Status.SCHEDULED]
    Job.objects.filter(pk__in=[job.pk for job in jobs], status__in=handed).update(
        status=Job.Status.PENDING, enqueued_at=None
    )
    for job in jobs:
        if job.status in handed:
            job.status, job.enqueued_at = Job.Status.PENDING, None


def _enqueue(job: Job, queue: str, now: datetime, pipe: Any) -> None:
    """What RQ's Queue.enqueue writes (the job hash, its place in the list), without its cost.

    The hash has every non-empty field RQ's own enqueue would give it, so RQ reads it as one of
    its jobs; only the arguments, description, timeout and times differ from job to job.
    """
    stamp = utcformat(now)
    mapping = {
        **_hash_template(),
        "data": _data(job),
        "description": _description(job),
        "origin": queue,
        "timeout": job.timeout or settings.RQ_QUEUES[queue]["DEFAULT_TIMEOUT"],
        "result_ttl": settings.CONVEYOR_RESULT_TTL,
        "created_at": stamp,
        "enqueued_at": stamp,
    }
    pipe.hset(RQJob.key_for(job.rq_id), mapping=mapping)
    pipe.rpush(Queue.redis_queue_namespace_prefix + queue, job.rq_id)


# From this many jobs for one queue on, the hashes are written by a Lua script that adds the
# fields common to all of them: far less to pack and send than one HSET of every field each.
MANY = 50
SCRIPT_CHUNK = 1000
_ENQUEUE_MANY = """
local common = {}
local n = tonumber(ARGV[2])
for i = 3, 2 + 2 * n do common[#common + 1] = ARGV[i] end
local ids = {}
for i = 3 + 2 * n, #ARGV, 4 do
    redis.call('HSET', ARGV[1] .. ARGV[i], 'data', ARGV[i + 1], 'description', ARGV[i + 2],
               'timeout', ARGV[i + 3], unpack(common))
    ids[#ids + 1] = ARGV[i]
end
redis.call('RPUSH', KEYS[1], unpack(ids))
return #ids
"""


def _enqueue_many(jobs: list[Job], queue: str, now: datetime, pipe: Any) -> None:
    """Many jobs of one RQ queue, as `_enqueue` writes them, in one script call per 1,000."""
    stamp = utcformat(now)
    common = {
        **_hash_template(),
        "origin": queue,
        "result_ttl": settings.CONVEYOR_RESULT_TTL,
        "created_at": stamp,
        "enqueued_at": stamp,
    }
    head: list[Any] = [RQJob.redis_job_namespace_prefix, len(common)]
    for name, value in common.items():
        head += [name, value]
    default_timeout = settings.RQ_QUEUES[queue]["DEFAULT_TIMEOUT"]
    script = _enqueue_many_script()
    for start in range(0, len(jobs), SCRIPT_CHUNK):
        args = list(head)
        for job in jobs[start : start + SCRIPT_CHUNK]:
            args += [job.rq_id, _data(job), _description(job), job.timeout or default_timeout]
        script(keys=[Queue.redis_queue_namespace_prefix + queue], args=args, client=pipe)


@functools.cache
def _enqueue_many_script() -> Any:
    return connection().register_script(_ENQUEUE_MANY)


def _data(job: Job) -> bytes:
    # Stored as pickled, not zlib-compressed as RQ's own enqueue stores it: a hundred bytes of
    # ids gain nothing from compression, which costs more than the rest of the hash. RQ reads
    # uncompressed data as it is (`Job.restore` falls back when decompression fails).
    return pickle.dumps((EXECUTE, None, _rq_args(job), {}), RQ_PICKLE)


# RQ's default serializer pickles with the highest protocol.
RQ_PICKLE = pickle.HIGHEST_PROTOCOL
_PER_JOB = ("data", "description", "origin", "timeout", "result_ttl", "created_at", "enqueued_at")


@functools.cache
def _hash_template() -> dict[str, Any]:
    """The fields RQ gives every job Conveyor enqueues, taken from a job RQ builds itself."""
    sample = RQJob.create(
        EXECUTE,
        args=("x", "x", 0),
        connection=connection(),
        result_ttl=1,
        timeout=1,
        id="template",
        origin="template",
        description="template",
        status=JobStatus.QUEUED,
    )
    fields = sample.to_dict()
    # RQ reads an empty field and a missing one alike: only the others are worth sending.
    return {name: value for name, value in fields.items() if name not in _PER_JOB and value != ""}


def _rq_args(job: Job) -> tuple[str, str, int]:
    """What an RQ job carries: ids and the kind's name, never the payload."""
    return (job.rq_id, job.kind, job.tenant_id)


def _description(job: Job) -> str:
    return f"{job.kind} · tenant {job.tenant_id}"


def _rq_options(job: Job) -> dict[str, Any]:
    return {
        "args": _rq_args(job),
        "job_id": job.rq_id,
        "timeout": job.timeout,
        "result_ttl": settings.CONVEYOR_RESULT_TTL,
        "description": _description(job),
    }


def _schedule(job: Job, pipe: Any) -> None:
    assert job.scheduled_at is not None
    queue = get_rq_queue(rq_queue_name(job.queue, job.priority))
    rq_job = queue.create_job(EXECUTE, **_rq_options(job))
    # RQ keeps whole seconds and truncates: round up so the job never starts early.
    due = job.scheduled_at.replace(microsecond=0) + timedelta(seconds=1)
    queue.schedule_job(rq_job, due, pipeline=pipe)


def withdraw(job: Job) -> None:
    """Take a waiting job out of Redis (queue or scheduled registry); quiet if it is not there."""
    try:
        rq_job = RQJob.fetch(job.rq_id, connection=connection())
        rq_job.cancel(remove_from_dependencies=True)
        fair.forget(connection(), get_rq_queue(rq_job.origin).key, job.rq_id, job.tenant_id)
    except (NoSuchJobError, InvalidJobOperation):
        return
    except RedisError as error:
        # The row is canceled already: a later delivery finds it so and does nothing.
        logger.warning("could not withdraw job=%s tenant=%s: %s", job.pk, job.tenant_id, error)


def _attempt_mark(job: Job) -> str:
    # The flag names the attempt it stops, so a flag left over never stops a later attempt.
    return job.started_at.isoformat() if job.started_at else "any"


def request_stop(job: Job) -> None:
    """Raise the running attempt's cancel flag and tell a forked work horse running it to stop."""
    if flag_stop(job):
        with contextlib.suppress(NoSuchJobError, InvalidJobOperation, RedisError):
            send_stop_job_command(connection(), job.rq_id)


def flag_stop(job: Job) -> bool:
    """Raise the cancel flag of `job`'s attempt (only that one); False if Redis refused."""
    try:
        connection().set(CANCEL_KEY.format(job.rq_id), _attempt_mark(job), ex=CANCEL_FLAG_TTL)
    except RedisError as error:
        logger.warning("could not flag job=%s tenant=%s to stop: %s", job.pk, job.tenant_id, error)
        return False
    return True


def is_cancel_requested(job: Job) -> bool:
    """Whether a cancel was asked for the attempt of `job` that is running now."""
    flag = connection().get(CANCEL_KEY.format(job.rq_id))
    return flag is not None and as_text(flag) in (_attempt_mark(job), "any")


def clear_cancel_flag(job: Job) -> None:
    with contextlib.suppress(RedisError):  # the flag expires anyway and names its attempt
        connection().delete(CANCEL_KEY.format(job.rq_id))


def pause(queue: str) -> None:
    connection().sadd(PAUSED_KEY, queue)


def resume(queue: str) -> None:
    connection().srem(PAUSED_KEY, queue)


def paused_queues(redis: Redis | None = None) -> set[str]:
    members = (redis or connection()).smembers(PAUSED_KEY)
    return {member.decode() if isinstance(member, bytes) else member for member in members}


def empty(queue: str) -> list[str]:
    """Drop every waiting RQ job of `queue`, scheduled ones included; returns their ids."""
    dropped: list[str] = []
    for name in rq_queue_names(queue):
        rq_queue = get_rq_queue(name)
        dropped += rq_queue.get_job_ids()
        rq_queue.empty()
        fair.drop_index(connection(), rq_queue.key)
        scheduled = ScheduledJobRegistry(queue=rq_queue)
        for job_id in scheduled.get_job_ids():
            scheduled.remove(job_id, delete_job=True)
            dropped.append(job_id)
    return dropped


def clean(queue: str, *, older_than: int) -> int:
    """Delete finished, failed and canceled RQ records of `queue` over `older_than` s old."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    removed = 0
    for name in rq_queue_names(queue):
        rq_queue = get_rq_queue(name)
        for registry in (
            rq_queue.finished_job_registry,
            rq_queue.failed_job_registry,
            rq_queue.canceled_job_registry,
        ):
            job_ids = registry.get_job_ids()
            fetched = RQJob.fetch_many(job_ids, connection=rq_queue.connection)
            for job_id, rq_job in zip(job_ids, fetched, strict=True):
                ended = rq_job and (rq_job.ended_at or rq_job.created_at)
                if rq_job is None or (ended and ended < cutoff):
                    registry.remove(job_id, delete_job=True)
                    removed += 1
    return removed


def queue_counts(queue: str) -> dict[str, int]:
    """Live counts of one queue from RQ's registries, summed over its priorities.

    One pipelined round trip of LLEN and ZCARD: the registries are counted as they are, not
    cleaned first (RQ's `count` cleans each one, hundreds of round trips for every queue);
    workers' maintenance and the reconciler clean them.
    """
    names = ("started", "scheduled", "deferred", "failed", "finished", "canceled")
    redis = connection()
    with redis.pipeline(transaction=False) as pipe:
        for name in rq_queue_names(queue):
            rq_queue = get_rq_queue(name)
            pipe.llen(rq_queue.key)
            for registry in (
                rq_queue.started_job_registry,
                rq_queue.scheduled_job_registry,
                rq_queue.deferred_job_registry,
                rq_queue.failed_job_registry,
                rq_queue.finished_job_registry,
                rq_queue.canceled_job_registry,
            ):
                pipe.zcard(registry.key)
        found = pipe.execute()
    counts = dict.fromkeys(("waiting", *names), 0)
    width = len(names) + 1
    for start in range(0, len(found), width):
        counts["waiting"] += found[start]
        for offset, name in enumerate(names, start=1):
            counts[name] += found[start + offset]
    return counts


def rq_state(job: Job) -> dict[str, Any] | None:
    """What Redis knows of the job right now, or None when it holds no record of it."""
    try:
        rq_job = RQJob.fetch(job.rq_id, connection=connection())
    except NoSuchJobError:
        return None
    return {
        "status": rq_job.get_status(refresh=False),
        "origin": rq_job.origin,
        "description": rq_job.description,
        "enqueued_at": rq_job.enqueued_at,
        "started_at": rq_job.started_at,
        "ended_at": rq_job.ended_at,
        "worker_name": rq_job.worker_name,
    }


def is_waiting(job_ids: list[str]) -> list[bool]:
    """For each id, whether Redis holds its RQ job waiting or running (one round trip).

    A job Redis lost, or holds as failed or finished while PostgreSQL says it waits, is not.
    """
    redis = connection()
    with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(RQJob.key_for(job_id), "status")
        statuses = pipe.execute()
    alive = {"queued", "scheduled", "deferred", "started"}
    return [as_text(status) in alive if status else False for status in statuses]


def running_job_ids() -> set[str]:
    """Ids of RQ jobs a live worker is executing now (their heartbeat has not expired)."""
    return {job_id for found in running_by_queue().values() for job_id in found}


def running_by_queue() -> dict[str, set[str]]:
    """Per Conveyor queue, the ids of the RQ jobs a live worker is executing now."""
    redis = connection()
    now = time.time()
    names = [(queue, name) for queue in settings.CONVEYOR_QUEUES for name in rq_queue_names(queue)]
    with redis.pipeline(transaction=False) as pipe:
        for _, name in names:
            pipe.zrangebyscore(StartedJobRegistry(name, connection=redis).key, now, "+inf")
        entries = pipe.execute()
    running: dict[str, set[str]] = {queue: set() for queue in settings.CONVEYOR_QUEUES}
    for (queue, _), found in zip(names, entries, strict=True):
        running[queue].update(as_text(entry).split(":", 1)[0] for entry in found)
    return running


SCHEDULER_FIELD = "conveyor_scheduler"


def forget_worker(name: str) -> None:
    """Drop a dead worker's registration and its RQ scheduler's locks at once, rather than when
    they expire (a minute on): a new worker's scheduler takes the locks when it starts."""
    redis = connection()
    key = RQWorker.redis_worker_namespace_prefix + name
    scheduler = redis.hget(key, SCHEDULER_FIELD)
    worker = RQWorker.find_by_key(key, redis)
    if worker is None:
        return
    if scheduler:
        for queue in worker.queue_names():
            release_lock(redis, RQScheduler.get_locking_key(queue), as_text(scheduler))
    worker.register_death()


def workers() -> list[dict[str, Any]]:
    """Every worker RQ knows of: its logical queues, its slots and the jobs running in them.

    `concurrency` is how many jobs the worker runs at once (1 for the one-at-a-time classes);
    `running_job_ids` are the jobs in its busy slots; `figures` what it last measured of
    itself and its host (`store_worker_figures`).
    """
    redis = connection()
    running = sorted(running_job_ids())
    rq_workers = RQWorker.all(connection=redis)
    with redis.pipeline(transaction=False) as pipe:
        for job_id in running:
            pipe.hget(RQJob.key_for(job_id), "worker_name")
        for worker in rq_workers:
            pipe.hmget(worker.key, ["concurrency", FIGURES_FIELD])
        replies = pipe.execute()
    owners, kept = replies[: len(running)], replies[len(running) :]
    jobs_of: dict[str, list[str]] = {}
    for job_id, owner in zip(running, owners, strict=True):
        if owner:
            jobs_of.setdefault(as_text(owner), []).append(job_id)
    found = []
    for worker, (slots, measured) in zip(rq_workers, kept, strict=True):
        jobs = jobs_of.get(worker.name, [])
        found.append(
            {
                "name": worker.name,
                "hostname": worker.hostname or "",
                "pid": worker.pid,
                "queues": sorted({logical_queue(name) for name in worker.queue_names()}),
                "state": worker.get_state(),
                "concurrency": int(slots) if slots else 1,
                "busy_slots": len(jobs),
                "running_job_ids": jobs,
                "current_job_id": jobs[0] if jobs else None,
                "last_heartbeat": worker.last_heartbeat,
                "successful_jobs": worker.successful_job_count,
                "failed_jobs": worker.failed_job_count,
                "figures": json.loads(measured) if measured else {},
            }
        )
    return found


FIGURES_FIELD = "conveyor_figures"


def store_worker_figures(key: str, figures: dict[str, Any], redis: Redis | None = None) -> None:
    """Keep a worker's own figures in its RQ hash: they expire with it."""
    (redis or connection()).hset(key, FIGURES_FIELD, json.dumps(figures))


def oldest_waiting_since(queue: str) -> datetime | None:
    """When the longest-waiting job of `queue` (any priority) was enqueued, per Redis."""
    redis = connection()
    with redis.pipeline(transaction=False) as pipe:
        for name in rq_queue_names(queue):
            pipe.lindex(get_rq_queue(name).key, 0)
        firsts = [as_text(first) for first in pipe.execute() if first]
    if not firsts:
        return None
    enqueued = [
        rq_job.enqueued_at
        for rq_job in RQJob.fetch_many(firsts, connection=redis)
        if rq_job is not None and rq_job.enqueued_at
    ]
    return min(enqueued, default=None)


def waiting_by_priority(queue: str) -> dict[str, int]:
    redis = connection()
    with redis.pipeline(transaction=False) as pipe:
        for name in rq_queue_names(queue):
            pipe.llen(get_rq_queue(name).key)
        counts = pipe.execute()
    return dict(zip(settings.CONVEYOR_PRIORITIES, counts, strict=True))


def redis_was_emptied() -> bool:
    """Whether Redis lost its data since anyone last asked: this caller alone is told so.

    The first call on a new Redis says yes too; a Redis that does not answer says no.
    """
    try:
        return bool(connection().set(MARKER_KEY, utcformat(timezone.now()), nx=True))
    except RedisError:
        return False


def forget_marker() -> None:
    """Make the next `redis_was_emptied` say yes: what it started did not finish."""
    with contextlib.suppress(RedisError):
        connection().delete(MARKER_KEY)


def ping() -> None:
    """Raise RedisError when Redis does not answer."""
    connection().ping()


def release_overdue(*, grace: float) -> int:
    """Move scheduled RQ jobs overdue by `grace` seconds to their queues; returns how many.

    RQ's scheduler does this every second, but its lock outlives a killed worker for a minute
    and other workers take it over only at their next maintenance. A job moved twice is
    delivered twice, which the runner's claim makes harmless.
    """
    redis = connection()
    moved = 0
    due = int(time.time() - grace)
    for queue in settings.CONVEYOR_QUEUES:
        for name in rq_queue_names(queue):
            rq_queue = get_rq_queue(name)
            registry = rq_queue.scheduled_job_registry
            job_ids = registry.get_jobs_to_schedule(timestamp=due)
            with redis.pipeline() as pipe:
                for rq_job in RQJob.fetch_many(job_ids, connection=redis):
                    if rq_job is not None:
                        rq_queue.enqueue_job(rq_job, pipeline=pipe)
                        registry.remove(rq_job, pipeline=pipe)
                        moved += 1
                pipe.execute()
    return moved


def clean_rq_records() -> int:
    """Drop RQ's finished, failed and canceled records older than the result TTL, and let RQ
    expire its own registries (started, deferred, scheduled-ready) and dead workers' entries."""
    removed = 0
    for name in settings.CONVEYOR_QUEUES:
        removed += clean(name, older_than=settings.CONVEYOR_RESULT_TTL)
        for rq_name in rq_queue_names(name):
            rq_queue = get_rq_queue(rq_name)
            clean_registries(rq_queue)
            clean_worker_registry(rq_queue)
    return removed


def rq_views() -> list[URLPattern]:
    """django-rq's own views (its dashboard and stats API), for the admin to mount and guard."""
    return get_api_urlpatterns() + get_admin_urlpatterns()
