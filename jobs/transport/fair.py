"""Fair dispatch across tenants: per-tenant waiting lists and a rotation, beside RQ's own list.

RQ's list of a queue (`rq:queue:email`, one per priority) keeps every waiting job id in arrival
order, so `rq info`, django-rq's views and RQ's own tools count and list what waits. Beside it,
each RQ queue has an index the workers take through, all inside the one Lua call that takes a
job (`LUA`, included by `bookkeeping`'s take script and by `PICK` for the forking worker):

- *intake*: the ids at the tail of RQ's list not yet indexed (everything RQ or Conveyor pushed
  since the last take, at most `INTAKE` per call) are appended to their tenant's list
  `conveyor:fair:<list>:t:<tenant>`; a tenant whose list was empty joins the rotation
  `conveyor:fair:<list>:rot`. `…:sorted` counts the indexed ids, which are always the head of
  RQ's list (new ids arrive at the tail; a job set aside goes back to the head, indexed).
- *pick*: the tenant at the head of the rotation gives its oldest job (FIFO within a tenant and
  priority) and moves to the tail after `weight` jobs in a row (`conveyor:fair:weights`); a
  paused tenant (`conveyor:fair:paused`: `<tenant>` or `<tenant>:<queue>`) or one held by its
  limits (`conveyor:fair:held:<queue>`, tenant → until, ms) is passed over without taking
  anything. The id is then removed from RQ's list (`LREM`, which walks the list from the head:
  cheap for the oldest tenant, proportional to its position for a tenant behind a backlog).
  An id no longer in RQ's list (withdrawn, emptied) is dropped from the index and skipped.
- *set aside*: a job whose tenant's limit holds it goes back to the head of RQ's list and of
  its tenant's list, and the tenant is held in that queue until it may run again; no attempt,
  no log line, no sleep in the worker. Idle workers wait on `conveyor:fair:wake:<queue>`, which
  enqueues, resumed tenants and freed concurrency slots push to.
"""

from typing import Any

from django.conf import settings
from redis import Redis
from rq.job import Job as RQJob
from rq.suspension import WORKERS_SUSPENDED

PAUSED_KEY = "conveyor:fair:paused"
PAUSED_QUEUES_KEY = "conveyor:paused-queues"  # whole queues paused (queueing.pause)
SUSPENDED_REPLY = "suspended"
WEIGHTS_KEY = "conveyor:fair:weights"
HELD_PREFIX = "conveyor:fair:held:"
WAKE_PREFIX = "conveyor:fair:wake:"
INDEX_PREFIX = "conveyor:fair:"
# Ids indexed per RQ list per take: a bulk enqueue of 10,000 is indexed in two takes.
INTAKE = 5000
# Stale index entries (jobs withdrawn meanwhile) dropped per take at most.
BUDGET = 1000
WAKE_TOKENS = 8

# The Lua functions the take scripts share. Expects JOB_PREFIX, FAIR_PAUSED, FAIR_WEIGHTS and
# FAIR_HELD to be defined by the script that includes it.
LUA = f"""
local FAIR_INTAKE = {INTAKE}
local fair_now_ms
do
    local t = redis.call('TIME')
    fair_now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fair_keys(L)
    local base = '{INDEX_PREFIX}' .. L
    return base .. ':t:', base .. ':rot', base .. ':sorted', base .. ':run'
end

local function fair_tenant(id)
    local d = redis.call('HGET', JOB_PREFIX .. id, 'description')
    if d then
        local t = string.match(d, 'tenant (%d+)$')
        if t then return t end
    end
    return '0'
end

local function fair_append(L, t, id, front)
    local tp, rot = fair_keys(L)
    local n
    if front then n = redis.call('LPUSH', tp .. t, id) else n = redis.call('RPUSH', tp .. t, id) end
    if n == 1 then redis.call('RPUSH', rot, t) end
end

local function fair_reset(L)
    local tp, rot, sorted, run = fair_keys(L)
    for _, t in ipairs(redis.call('LRANGE', rot, 0, -1)) do redis.call('DEL', tp .. t) end
    redis.call('DEL', rot, sorted, run)
end

-- Index the arrivals at the tail of RQ's list L; an empty L drops its index.
local function fair_intake(L)
    local tp, rot, sorted = fair_keys(L)
    local len = redis.call('LLEN', L)
    if len == 0 then
        if redis.call('EXISTS', rot, sorted) > 0 then fair_reset(L) end
        return
    end
    local was = tonumber(redis.call('GET', sorted) or '0')
    local s = math.min(was, len)
    -- Indexed ids but no tenant in rotation: the index was lost; index RQ's list again.
    if s > 0 and redis.call('EXISTS', rot) == 0 then s = 0 end
    local n = math.min(len - s, FAIR_INTAKE)
    if n > 0 then
        for _, id in ipairs(redis.call('LRANGE', L, s, s + n - 1)) do
            fair_append(L, fair_tenant(id), id, false)
        end
        s = s + n
    end
    if s ~= was then redis.call('SET', sorted, s) end
end

-- 0 when tenant t may run on logical queue q, -1 when paused, else ms until its hold ends.
local function fair_wait(t, q)
    if redis.call('SISMEMBER', FAIR_PAUSED, t) == 1
        or redis.call('SISMEMBER', FAIR_PAUSED, t .. ':' .. q) == 1 then
        return -1
    end
    local held = FAIR_HELD .. q
    local till = redis.call('ZSCORE', held, t)
    if not till then return 0 end
    local wait = tonumber(till) - fair_now_ms
    if wait > 0 then return wait end
    redis.call('ZREM', held, t)
    return 0
end

-- Put an id (taken out of L) back at the head of L and of its tenant's list, indexed.
local function fair_put_back(L, t, id)
    local tp, rot, sorted = fair_keys(L)
    redis.call('LPUSH', L, id)
    fair_append(L, t, id, true)
    redis.call('INCR', sorted)
end

-- The next job of L in rotation, removed from L: its id and tenant; or nil, the ms until a
-- held tenant of L may run (nil when none is held), and whether a paused tenant has work in L.
local function fair_pick(L, q)
    local tp, rot, sorted, run = fair_keys(L)
    local soonest = nil
    local paused = false
    local n = redis.call('LLEN', rot)
    local passed = 0
    local budget = {BUDGET}
    while passed < n and budget > 0 do
        local t = redis.call('LINDEX', rot, 0)
        local tl = tp .. t
        if redis.call('EXISTS', tl) == 0 then
            redis.call('LPOP', rot)
            redis.call('HDEL', run, t)
            n = n - 1
        else
            local wait = fair_wait(t, q)
            if wait ~= 0 then
                redis.call('LMOVE', rot, rot, 'LEFT', 'RIGHT')
                passed = passed + 1
                if wait < 0 then paused = true end
                if wait > 0 and (soonest == nil or wait < soonest) then soonest = wait end
            else
                local id = redis.call('LPOP', tl)
                if redis.call('DECR', sorted) < 0 then redis.call('SET', sorted, 0) end
                if redis.call('EXISTS', tl) == 0 then
                    redis.call('LPOP', rot)
                    redis.call('HDEL', run, t)
                    n = n - 1
                elseif redis.call('HINCRBY', run, t, 1)
                        >= tonumber(redis.call('HGET', FAIR_WEIGHTS, t) or '1') then
                    redis.call('LMOVE', rot, rot, 'LEFT', 'RIGHT')
                    redis.call('HDEL', run, t)
                end
                if redis.call('LREM', L, 1, id) == 1 then return id, t end
                budget = budget - 1
                passed = 0
            end
        end
    end
    return nil, soonest, paused
end
"""

# The forking worker's take: the next job by the same rotation, without RQ's bookkeeping (RQ's
# own worker writes that). KEYS: paused queues set, suspension flag, then RQ's lists in
# listening order. ARGV: 1 job key prefix, 2 paused tenants set, 3 weights hash, 4 held prefix,
# 5… each list's logical queue. Returns {position, id}, 'suspended', {0, ms} when every waiting
# job's tenant is held (ms until the first may run; -1: only paused tenants' jobs wait), or nil.
PICK = (
    """
local JOB_PREFIX, FAIR_PAUSED, FAIR_WEIGHTS, FAIR_HELD = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
"""
    + LUA
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then return 'suspended' end
local soonest, paused = nil, false
for i = 1, #KEYS - 2 do
    local q = ARGV[4 + i]
    if redis.call('SISMEMBER', KEYS[1], q) == 0 then
        local L = KEYS[2 + i]
        fair_intake(L)
        local id, wait, held_paused = fair_pick(L, q)
        if id then return {i, id} end
        if wait and (soonest == nil or wait < soonest) then soonest = wait end
        paused = paused or held_paused
    end
end
if soonest then return {0, soonest} end
if paused then return {0, -1} end
return nil
"""
)

# A job its tenant's limit holds, back where it waited: its started records dropped, its RQ
# status queued again, at the head of its lists; its tenant held in the queue for ARGV[5] ms.
# KEYS: 1 started registry, 2 job hash, 3 execution hash, 4 job's execution registry, 5 worker
# execution index, 6 RQ's list, 7 held set of the queue, 8 wake list of the queue.
# ARGV: 1 "job:execution", 2 execution id, 3 job id, 4 tenant id, 5 ms to hold the tenant.
SET_ASIDE = (
    """
local JOB_PREFIX, FAIR_PAUSED, FAIR_WEIGHTS, FAIR_HELD = '', '', '', ''
"""
    + LUA
    + f"""
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('SREM', KEYS[5], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'status', 'queued')
fair_put_back(KEYS[6], ARGV[4], ARGV[3])
local till = fair_now_ms + tonumber(ARGV[5])
local held = tonumber(redis.call('ZSCORE', KEYS[7], ARGV[4]) or '0')
if till > held then redis.call('ZADD', KEYS[7], till, ARGV[4]) end
redis.call('RPUSH', KEYS[8], '1')
redis.call('LTRIM', KEYS[8], -{WAKE_TOKENS}, -1)
redis.call('EXPIRE', KEYS[8], 60)
return 1
"""
)


def index_keys(list_key: str) -> tuple[str, str, str, str]:
    """(tenant list prefix, rotation, indexed count, run counts) of one RQ list's index."""
    base = INDEX_PREFIX + list_key
    return f"{base}:t:", f"{base}:rot", f"{base}:sorted", f"{base}:run"


def script_args() -> list[str]:
    """The names the shared Lua expects: job prefix, paused tenants, weights, held prefix."""
    return [RQJob.redis_job_namespace_prefix, PAUSED_KEY, WEIGHTS_KEY, HELD_PREFIX]


def wake_key(queue: str) -> str:
    return WAKE_PREFIX + queue


def wake_keys(queues: list[str]) -> list[str]:
    return [wake_key(queue) for queue in dict.fromkeys(queues)]


def pick(redis: Redis, queues: list[Any]) -> tuple[int, str] | float | str | None:
    """The forking worker's next job, by the rotation: (position, id); the seconds until a held
    tenant may run when every waiting job is held; SUSPENDED_REPLY; or None when none waits."""
    keys = [PAUSED_QUEUES_KEY, WORKERS_SUSPENDED, *(queue.key for queue in queues)]
    names = [queue.name.split(".", 1)[0] for queue in queues]
    reply = _pick_script(redis)(keys=keys, args=[*script_args(), *names])
    if reply is None:
        return None
    if not isinstance(reply, list):
        return SUSPENDED_REPLY
    position, value = int(reply[0]), reply[1]
    if position == 0:  # all held: ms until the first may run, or -1 when only paused wait
        return int(value) / 1000 if int(value) >= 0 else None
    return position - 1, value.decode() if isinstance(value, bytes) else str(value)


_SCRIPTS: dict[tuple[int, str], Any] = {}


def _pick_script(redis: Redis) -> Any:
    key = (id(redis), "pick")
    if key not in _SCRIPTS:
        _SCRIPTS[key] = redis.register_script(PICK)
    return _SCRIPTS[key]


def wake(pipe: Any, queue: str) -> None:
    """Tell workers waiting on `queue` (logical) to look again; a few tokens at most."""
    key = wake_key(queue)
    pipe.rpush(key, "1")
    pipe.ltrim(key, -WAKE_TOKENS, -1)
    pipe.expire(key, 60)


def forget(redis: Redis, list_key: str, job_id: str, tenant_id: int) -> None:
    """Drop a withdrawn job from its tenant's list (RQ removed it from its own list)."""
    prefix, _, sorted_key, _ = index_keys(list_key)
    if redis.lrem(f"{prefix}{tenant_id}", 1, job_id):
        redis.decr(sorted_key)


def drop_index(redis: Redis, list_key: str) -> None:
    """Forget a whole queue's index (its RQ list was emptied)."""
    prefix, rotation, sorted_key, run = index_keys(list_key)
    tenants = [t.decode() if isinstance(t, bytes) else t for t in redis.lrange(rotation, 0, -1)]
    redis.delete(*(f"{prefix}{t}" for t in tenants), rotation, sorted_key, run)


def waiting_by_tenant(redis: Redis, list_keys: list[str]) -> dict[int, int]:
    """Indexed waiting ids per tenant over the given RQ lists (ids not yet indexed excluded)."""
    rotations = [index_keys(key)[1] for key in list_keys]
    with redis.pipeline(transaction=False) as pipe:
        for rotation in rotations:
            pipe.lrange(rotation, 0, -1)
        members = pipe.execute()
    pairs = [(key, int(t)) for key, found in zip(list_keys, members, strict=True) for t in found]
    with redis.pipeline(transaction=False) as pipe:
        for key, tenant in pairs:
            pipe.llen(f"{index_keys(key)[0]}{tenant}")
        lengths = pipe.execute()
    counts: dict[int, int] = {}
    for (_, tenant), length in zip(pairs, lengths, strict=True):
        counts[tenant] = counts.get(tenant, 0) + int(length)
    return counts


def hold(redis: Redis, tenant_id: int, queue: str, seconds: float) -> None:
    """Hold a tenant's jobs on `queue` for `seconds` (longer holds win)."""
    key = HELD_PREFIX + queue
    till = int(redis.time()[0] * 1000 + seconds * 1000)
    current = redis.zscore(key, tenant_id)
    if current is None or current < till:
        redis.zadd(key, {str(tenant_id): till})


def unhold(redis: Redis, tenant_id: int, queue: str) -> None:
    """End a tenant's hold on `queue` (a concurrency slot freed) and wake a worker."""
    with redis.pipeline(transaction=False) as pipe:
        pipe.zrem(HELD_PREFIX + queue, str(tenant_id))
        wake(pipe, queue)
        pipe.execute()


def set_tenant_state(
    redis: Redis, tenant_id: int, *, weight: int, paused: list[str], queues: list[str]
) -> None:
    """Mirror one tenant's dispatch settings into Redis: weight, paused queues ("*" = all)."""
    members = [str(tenant_id) if name == "*" else f"{tenant_id}:{name}" for name in paused]
    every = [str(tenant_id)] + [f"{tenant_id}:{name}" for name in queues]
    with redis.pipeline(transaction=True) as pipe:
        if weight == 1:
            pipe.hdel(WEIGHTS_KEY, str(tenant_id))
        else:
            pipe.hset(WEIGHTS_KEY, str(tenant_id), weight)
        pipe.srem(PAUSED_KEY, *every)
        if members:
            pipe.sadd(PAUSED_KEY, *members)
        for name in queues:
            wake(pipe, name)
        pipe.execute()


def queues_of(queue: str) -> list[str]:
    return [name for name in settings.CONVEYOR_QUEUES if queue in ("*", name)]
