"""RQ's per-job Redis bookkeeping for FastWorker: one Lua call to start a job, one to finish it.

RQ's own worker spends about eighteen round trips on a job (dequeue, fetch, two pipelines to
mark it started, heartbeats, a watched transaction to finish it, a result stream entry).
These scripts write the same records — the job hash, the started registry and its execution
entry, the worker's hash and execution index, the finished registry — so `rq info`, django-rq's
views, RQ's registry clean-up and Conveyor's reconciler see what RQ itself would show. The
finish of one job travels in the same round trip as the start of the next. The return value is
not copied into Redis: it lives in the `Job` row.
"""

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.exceptions import NoScriptError
from rq.defaults import RQ_KEY_PREFIX
from rq.executions import ExecutionRegistry
from rq.job import Job as RQJob
from rq.queue import Queue
from rq.suspension import WORKERS_SUSPENDED
from rq.utils import utcformat

# KEYS: paused set, suspension flag, worker hash, worker execution index, then for each queue
# in listening order its list and its started registry.
# ARGV: 1 now (epoch s), 2 now (RQ's text form), 3 worker name, 4 worker key TTL, 5 job key
# prefix, 6 execution key prefix, 7 execution registry prefix, 8 new execution id, 9 heartbeat
# interval, 10 heartbeat grace, 11 a job id popped already by BLPOP or '', 12 its queue's
# position, 13… each queue's logical name (what the paused set holds).
_TAKE = """
local now = tonumber(ARGV[1])
redis.call('HSET', KEYS[3], 'last_heartbeat', ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('EXPIRE', KEYS[4], ARGV[4])

local function paused(i)
    return redis.call('SISMEMBER', KEYS[1], ARGV[12 + i]) == 1
end

local function start(i, id)
    local jkey = ARGV[5] .. id
    local job = redis.call('HMGET', jkey, 'data', 'timeout', 'result_ttl')
    if not job[1] then return nil end
    local ttl = tonumber(ARGV[9])
    local timeout = tonumber(job[2] or '')
    if timeout and timeout > 0 and timeout < ttl then ttl = math.ceil(timeout) end
    ttl = math.max(ttl, 1) + tonumber(ARGV[10])
    local member = id .. ':' .. ARGV[8]
    redis.call('HSET', jkey, 'status', 'started', 'worker_name', ARGV[3],
               'started_at', ARGV[2], 'last_heartbeat', ARGV[2])
    redis.call('PERSIST', jkey)
    redis.call('ZADD', KEYS[4 + 2 * i], now + ttl, member)
    local ekey = ARGV[6] .. member
    redis.call('HSET', ekey, 'id', ARGV[8], 'job_id', id, 'created_at', ARGV[1],
               'last_heartbeat', ARGV[1], 'worker_name', ARGV[3])
    redis.call('EXPIRE', ekey, ttl)
    local rkey = ARGV[7] .. id
    redis.call('ZADD', rkey, now + ttl + 60, ARGV[8])
    redis.call('EXPIRE', rkey, ttl + 60)
    redis.call('SADD', KEYS[4], member)
    redis.call('EXPIRE', KEYS[4], ttl + 60)
    redis.call('HSET', KEYS[3], 'state', 'busy')
    return {i, id, job[1], job[2] or '', job[3] or '', ttl}
end

if redis.call('EXISTS', KEYS[2]) == 1 then
    if ARGV[11] ~= '' then redis.call('LPUSH', KEYS[3 + 2 * tonumber(ARGV[12])], ARGV[11]) end
    return 'suspended'
end
if ARGV[11] ~= '' then
    local i = tonumber(ARGV[12])
    if paused(i) then
        redis.call('LPUSH', KEYS[3 + 2 * i], ARGV[11])
    else
        local taken = start(i, ARGV[11])
        if taken then return taken end
    end
end
for i = 1, (#KEYS - 4) / 2 do
    if not paused(i) then
        while true do
            local id = redis.call('LPOP', KEYS[3 + 2 * i])
            if not id then break end
            local taken = start(i, id)
            if taken then return taken end
        end
    end
end
redis.call('HSET', KEYS[3], 'state', 'idle')
return nil
"""

# KEYS: started registry, job hash, execution hash, job's execution registry, worker hash,
# worker execution index, finished registry.
# ARGV: 1 "job:execution", 2 execution id, 3 job id, 4 ended at (text), 5 result TTL,
# 6 now (epoch s), 7 seconds worked, 8 '1' to count a success ('0' only drops the records).
_FINISH = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('SREM', KEYS[6], ARGV[1])
if ARGV[8] == '1' then
    redis.call('HINCRBY', KEYS[5], 'successful_job_count', 1)
    redis.call('HINCRBYFLOAT', KEYS[5], 'total_working_time', ARGV[7])
end
local ttl = tonumber(ARGV[5])
if ttl == 0 then
    redis.call('DEL', KEYS[2])
elseif redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('HSET', KEYS[2], 'status', 'finished', 'ended_at', ARGV[4])
    if ttl > 0 then
        redis.call('EXPIRE', KEYS[2], ttl)
        redis.call('ZADD', KEYS[7], tonumber(ARGV[6]) + ttl, ARGV[3])
    else
        redis.call('ZADD', KEYS[7], '+inf', ARGV[3])
    end
end
return 1
"""

# KEYS: started registry, execution hash, job's execution registry, job hash, worker hash,
# worker execution index. ARGV: 1 "job:execution", 2 execution id, 3 TTL, 4 now (epoch s),
# 5 now (text), 6 worker key TTL.
_BEAT = """
local now = tonumber(ARGV[4])
local ttl = tonumber(ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[1])
    redis.call('HSET', KEYS[2], 'last_heartbeat', ARGV[4])
    redis.call('EXPIRE', KEYS[2], ttl)
    redis.call('ZADD', KEYS[3], 'XX', now + ttl + 60, ARGV[2])
    redis.call('EXPIRE', KEYS[3], ttl + 60)
    if redis.call('EXISTS', KEYS[4]) == 1 then
        redis.call('HSET', KEYS[4], 'last_heartbeat', ARGV[5])
    end
end
redis.call('HSET', KEYS[5], 'last_heartbeat', ARGV[5])
redis.call('EXPIRE', KEYS[5], ARGV[6])
redis.call('EXPIRE', KEYS[6], ARGV[6])
return 1
"""

SCRIPTS = {"take": _TAKE, "finish": _FINISH, "beat": _BEAT}
SUSPENDED = "suspended"


@dataclass
class Taken:
    """A job the worker took: marked started in Redis, not yet claimed in PostgreSQL."""

    position: int
    job_id: str
    data: bytes
    timeout: int | None
    result_ttl: int | None
    execution_id: str
    heartbeat_ttl: int
    started_at: datetime
    started: float

    @property
    def member(self) -> str:
        return f"{self.job_id}:{self.execution_id}"


class Bookkeeper:
    """The Redis side of one worker's jobs: take the next, beat while it runs, finish it."""

    def __init__(
        self,
        connection: Redis,
        *,
        worker_name: str,
        worker_key: str,
        executions_key: str,
        queues: list[Queue],
        logical_names: list[str],
        paused_key: str,
        worker_ttl: int,
        interval: int,
        grace: int,
    ) -> None:
        self.connection = connection
        self.worker_name = worker_name
        self.worker_key = worker_key
        self.executions_key = executions_key
        self.queues = queues
        self.worker_ttl = worker_ttl
        self.interval = interval
        self.grace = grace
        self.started_keys = [queue.started_job_registry.key for queue in queues]
        self.finished_keys = [queue.finished_job_registry.key for queue in queues]
        self._take_keys = [paused_key, WORKERS_SUSPENDED, worker_key, executions_key]
        for queue, started_key in zip(queues, self.started_keys, strict=True):
            self._take_keys += [queue.key, started_key]
        self._logical_names = logical_names
        self._shas: dict[str, str] = {}
        self._load_scripts()

    def _load_scripts(self) -> None:
        self._shas = {name: self.connection.script_load(source) for name, source in SCRIPTS.items()}

    def take(
        self, *, finished: "Finished | None" = None, given: tuple[int, str] | None = None
    ) -> Taken | str | None:
        """Finish `finished` (if any) and take the next job, in one round trip.

        `given` is a job id BLPOP popped already, with its queue's position; it is started (or
        pushed back at the front if its queue was paused meanwhile). Returns the job taken,
        SUSPENDED while `rq suspend` holds, or None when every listened queue is empty.
        """
        taken = self.take_many(1, finished=[finished] if finished else [], given=given)
        return taken if isinstance(taken, str) else next(iter(taken), None)

    def take_many(
        self,
        count: int,
        *,
        finished: Sequence["Finished"] = (),
        given: tuple[int, str] | None = None,
    ) -> list[Taken] | str:
        """Finish `finished` and take up to `count` jobs, in one round trip.

        Each job is taken by its own run of the take script, in order, so each is the next one
        that script would choose on its own. `given` is as for `take` (it is the first taken).
        Returns the jobs taken (none when every listened queue is empty) or SUSPENDED.
        """
        calls = [done.call() for done in finished]
        starts = [self._take_call(given if index == 0 else None) for index in range(count)]
        calls += [call for call, _ in starts]
        replies = self._run(calls)[len(finished) :]
        taken: list[Taken] = []
        for reply, (_, started_at) in zip(replies, starts, strict=True):
            if reply is None:
                continue
            if not isinstance(reply, list):
                return SUSPENDED
            taken.append(self._taken(reply, started_at))
        return taken

    def _take_call(
        self, given: tuple[int, str] | None
    ) -> tuple[tuple[str, list[Any], list[Any]], tuple[datetime, str]]:
        started_at = datetime.now(UTC)
        started = started_at.timestamp()
        execution_id = uuid.uuid4().hex
        position, job_id = given if given else (-1, "")
        args = [
            repr(started),
            utcformat(started_at),
            self.worker_name,
            self.worker_ttl,
            RQJob.redis_job_namespace_prefix,
            f"{RQ_KEY_PREFIX}:execution:",
            ExecutionRegistry.key_template.format(""),
            execution_id,
            self.interval,
            self.grace,
            job_id,
            position + 1,
            *self._logical_names,
        ]
        return ("take", self._take_keys, args), (started_at, execution_id)

    def _taken(self, reply: list[Any], started: tuple[datetime, str]) -> Taken:
        index, rq_id, data, timeout, result_ttl, ttl = reply
        started_at, execution_id = started
        return Taken(
            position=int(index) - 1,
            job_id=rq_id.decode(),
            data=data,
            timeout=int(timeout) if timeout else None,
            result_ttl=int(result_ttl) if result_ttl else None,
            execution_id=execution_id,
            heartbeat_ttl=int(ttl),
            started_at=started_at,
            started=time.monotonic(),
        )

    def finish(self, finished: "Finished") -> None:
        self.finish_many([finished])

    def finish_many(self, finished: Sequence["Finished"]) -> None:
        if finished:
            self._run([done.call() for done in finished])

    def beat(self, taken: Taken) -> None:
        """Keep a long job's started-registry entry, execution and worker alive."""
        self.beat_many([taken])

    def beat_many(self, running: Sequence[Taken]) -> None:
        """Keep every running job's records and the worker alive, in one round trip."""
        now = datetime.now(UTC)
        calls = []
        for taken in running:
            keys = [
                self.started_keys[taken.position],
                f"{RQ_KEY_PREFIX}:execution:{taken.member}",
                ExecutionRegistry.key_template.format(taken.job_id),
                RQJob.key_for(taken.job_id),
                self.worker_key,
                self.executions_key,
            ]
            args = [
                taken.member,
                taken.execution_id,
                taken.heartbeat_ttl,
                repr(now.timestamp()),
                utcformat(now),
                self.worker_ttl,
            ]
            calls.append(("beat", keys, args))
        if calls:
            self._run(calls)

    def finished(self, taken: Taken, *, result_ttl: int) -> "Finished":
        return Finished(self, taken, result_ttl, datetime.now(UTC))

    def drop(self, taken: Taken) -> None:
        """Remove the records of a job whose RQ hash vanished while it ran."""
        self.finish(Finished(self, taken, 0, datetime.now(UTC), succeeded=False))

    def _run(self, calls: list[tuple[str, list[Any], list[Any]]]) -> list[Any]:
        """EVALSHA each call in one round trip; a script Redis forgot is loaded and run again."""
        with self.connection.pipeline(transaction=False) as pipe:
            for name, keys, args in calls:
                pipe.evalsha(self._shas[name], len(keys), *keys, *args)
            replies = pipe.execute(raise_on_error=False)
        for index, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                self._load_scripts()
                name, keys, args = calls[index]
                replies[index] = self.connection.evalsha(self._shas[name], len(keys), *keys, *args)
            elif isinstance(reply, Exception):
                raise reply
        return replies


@dataclass
class Finished:
    """A job that succeeded, whose Redis records are written with the next take."""

    bookkeeper: Bookkeeper
    taken: Taken
    result_ttl: int
    ended_at: datetime
    succeeded: bool = True

    def call(self) -> tuple[str, list[Any], list[Any]]:
        taken, bookkeeper = self.taken, self.bookkeeper
        keys = [
            bookkeeper.started_keys[taken.position],
            RQJob.key_for(taken.job_id),
            f"{RQ_KEY_PREFIX}:execution:{taken.member}",
            ExecutionRegistry.key_template.format(taken.job_id),
            bookkeeper.worker_key,
            bookkeeper.executions_key,
            bookkeeper.finished_keys[taken.position],
        ]
        worked = (self.ended_at - taken.started_at).total_seconds()
        args = [
            taken.member,
            taken.execution_id,
            taken.job_id,
            utcformat(self.ended_at),
            self.result_ttl,
            int(self.ended_at.timestamp()),
            repr(worked),
            "1" if self.succeeded else "0",
        ]
        return "finish", keys, args
