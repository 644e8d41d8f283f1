"""Rate limits and per-tenant concurrency limits, held in Redis for every worker on every machine.

Rates are spaced evenly (a generic cell rate algorithm): "10/s" lets one start through every
100 ms, so no second ever sees more than ten. Concurrency is a counted semaphore whose slots
expire, so a worker that dies cannot hold one for longer than its job's timeout.
"""

import time
from dataclasses import dataclass

from django.conf import settings
from redis import Redis

from jobs.kinds import JobKind
from jobs.transport import fair, queueing
from tenants.limits import parse_rate
from tenants.models import Tenant

# Redis' clock serves every machine, so workers with skewed clocks still agree.
_RATE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat > now then return tat - now end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(interval) + 1000)
return 0
"""

# Returns 0 when a slot is taken, else the ms until the first running slot expires (a slot
# freed earlier ends the tenant's hold at once: `release`).
_SLOT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
    redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 60)
    return 0
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, math.ceil((tonumber(first[2]) - now) * 1000))
"""

# Ends a tenant's hold on a queue when one of its concurrency slots frees, and wakes a worker.
_UNHOLD_SCRIPT = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
    redis.call('RPUSH', KEYS[2], '1')
    redis.call('LTRIM', KEYS[2], -8, -1)
    redis.call('EXPIRE', KEYS[2], 60)
end
return 1
"""


@dataclass(frozen=True)
class Hold:
    """Why a job may not start yet, how long until its tenant may run again, and where: the
    worker sets the job aside and holds the tenant on the queue that long."""

    reason: str
    wait: float
    tenant_id: int = 0
    queue: str = ""


def rate_for(tenant: Tenant, kind: JobKind) -> tuple[str, str] | None:
    """(bucket name, rate) limiting `kind` for `tenant`, or None when it is not limited."""
    name = kind.rate_limit
    if not name:
        return None
    if "/" in name:
        return kind.name, name
    rate = tenant.rate_limits.get(name) or kind.queue_spec.get("rate_limits", {}).get(name)
    if rate is None:
        for spec in settings.CONVEYOR_QUEUES.values():
            rate = rate or spec.get("rate_limits", {}).get(name)
    return (name, rate) if rate else None


def concurrency_for(tenant: Tenant, kind: JobKind) -> tuple[str, int] | None:
    """(slot name, how many may run at once) for `kind` and `tenant`, or None when unlimited."""
    name = kind.name if kind.concurrency else kind.queue
    limit = tenant.concurrency_limits.get(name) or kind.tenant_concurrency
    return (name, int(limit)) if limit else None


def take_token(tenant: Tenant, name: str, rate: str, *, redis: Redis | None = None) -> float:
    """Take one start from the tenant's `name` bucket: 0 when taken, else seconds to wait."""
    count, period = parse_rate(rate)
    key = f"conveyor:rate:{tenant.pk}:{name}"
    redis = redis or queueing.connection()
    waited_ms = redis.eval(_RATE_SCRIPT, 1, key, period * 1000 / count)
    return float(waited_ms) / 1000


def wait_for_token(tenant: Tenant, name: str, rate: str) -> None:
    """Block until the tenant's `name` bucket lets one more through (for per-item limits)."""
    while (wait := take_token(tenant, name, rate)) > 0:
        time.sleep(wait)


def take_slot(tenant: Tenant, name: str, limit: int, *, holder: str, ttl: float) -> float:
    """Take one of the tenant's `name` slots: 0 when taken, else seconds until one expires."""
    key = f"conveyor:slots:{tenant.pk}:{name}"
    waited_ms = queueing.connection().eval(_SLOT_SCRIPT, 1, key, limit, holder, ttl)
    return float(waited_ms) / 1000


def release_slot(tenant: Tenant, name: str, *, holder: str) -> None:
    queueing.connection().zrem(f"conveyor:slots:{tenant.pk}:{name}", holder)


def acquire(tenant: Tenant, kind: JobKind, *, holder: str, ttl: float) -> Hold | None:
    """Take the slot and the start `kind` needs, or say how long until the tenant may run.

    Never waits: a held job is set aside by the worker, which takes other tenants' jobs.
    """
    slot = concurrency_for(tenant, kind)
    if slot and (wait := take_slot(tenant, slot[0], slot[1], holder=holder, ttl=ttl)) > 0:
        reason = f"{slot[1]} {slot[0]} job(s) of this tenant are running already"
        return Hold(reason, wait, tenant.pk, kind.queue)
    rate = rate_for(tenant, kind)
    if rate and (wait := take_token(tenant, *rate)) > 0:
        if slot:
            release_slot(tenant, slot[0], holder=holder)
        return Hold(f"rate limit {rate[0]} ({rate[1]}) reached", wait, tenant.pk, kind.queue)
    return None


def release(tenant: Tenant, kind: JobKind, *, holder: str) -> None:
    """Free the job's slot; a tenant held for want of one may run again at once."""
    slot = concurrency_for(tenant, kind)
    if slot:
        release_slot(tenant, slot[0], holder=holder)
        keys = [fair.HELD_PREFIX + kind.queue, fair.wake_key(kind.queue)]
        queueing.connection().eval(_UNHOLD_SCRIPT, 2, *keys, tenant.pk)
