"""Per-tenant API throttling, counted in Redis so that every web process shares one budget."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from jobs.transport import queueing

if TYPE_CHECKING:  # DRF imports this module while rest_framework.views is still loading
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

KEY = "conveyor:throttle:{}:{}"


class TenantRateThrottle(SimpleRateThrottle):
    """`DEFAULT_THROTTLE_RATES["tenant"]` requests per tenant, in fixed windows held in Redis.

    The request's tenant is set by `HasTenantRole` before throttles run; views without a tenant
    (operators' queue operations) count against the user instead. While Redis is down every
    request is let through: the API keeps answering, enqueues included.
    """

    scope = "tenant"
    num_requests: int | None
    duration: int | None

    def __init__(self) -> None:
        self.wait_seconds = 0.0
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_rate(self) -> str | None:
        # Read at each request, not at import, so that settings overrides take effect.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return str(rate) if rate else None

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            return f"tenant:{tenant.pk}"
        if request.user and request.user.is_authenticated:
            return f"user:{request.user.pk}"
        return None

    def allow_request(self, request: Request, view: APIView) -> bool:
        if self.rate is None or self.num_requests is None or self.duration is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = time.time()
        window = int(now // self.duration)
        try:
            count = _count(KEY.format(key, window), ttl=self.duration)
        except RedisError as error:
            logger.warning("throttle not applied for %s, Redis unreachable: %s", key, error)
            return True
        if count <= self.num_requests:
            return True
        self.wait_seconds = (window + 1) * self.duration - now
        return False

    def wait(self) -> float:
        return max(self.wait_seconds, 1.0)


def _count(key: str, *, ttl: int) -> int:
    """Add one request to `key`'s window and return how many it holds now."""
    with queueing.connection().pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, ttl + 1)
        count, _ = pipe.execute()
    return int(count)
