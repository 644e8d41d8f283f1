"""Per-tenant API throttling and failed sign-in limits, counted in Redis so that every web
process shares one budget."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from redis.exceptions import RedisError
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from jobs.transport import queueing
from tenants.authentication import ApiKeyAuthentication
from tenants.models import ApiKey

if TYPE_CHECKING:  # DRF imports this module while rest_framework.views is still loading
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

KEY = "conveyor:throttle:{}:{}"


class ApiRateThrottle(SimpleRateThrottle):
    """`DEFAULT_THROTTLE_RATES["user"]` requests per user and `["tenant"]` per tenant, in fixed
    windows held in Redis: every web process shares both budgets, counted in one round trip.

    The request's tenant is set by `HasTenantRole` before throttles run; views without a tenant
    (operators' queue operations) count only the user. While Redis is down every request is let
    through: the API keeps answering, enqueues included.
    """

    SCOPES = ("user", "tenant")

    def __init__(self) -> None:
        self.wait_seconds = 0.0

    def allow_request(self, request: Request, view: APIView) -> bool:
        budgets = self._budgets(request)
        if not budgets:
            return True
        now = time.time()
        windows = [(key, limit, duration, int(now // duration)) for key, limit, duration in budgets]
        try:
            counts = _count(
                [(KEY.format(key, window), duration) for key, _, duration, window in windows]
            )
        except RedisError as error:
            logger.warning("throttle not applied, Redis unreachable: %s", error)
            return True
        waits = [
            (window + 1) * duration - now
            for (_, limit, duration, window), count in zip(windows, counts, strict=True)
            if count > limit
        ]
        self.wait_seconds = max(waits, default=0.0)
        return not waits

    def _budgets(self, request: Request) -> list[tuple[str, int, int]]:
        """(key, requests, seconds) of each budget the request counts against."""
        owners: dict[str, Any] = {"tenant": getattr(request, "tenant", None)}
        if request.user and request.user.is_authenticated:
            owners["user"] = request.user
        # Read at each request, not at import, so that settings overrides take effect.
        rates = api_settings.DEFAULT_THROTTLE_RATES
        budgets = []
        for scope in self.SCOPES:
            owner, rate = owners.get(scope), rates.get(scope)
            limit, duration = self.parse_rate(str(rate)) if rate else (None, None)
            if owner is not None and limit is not None and duration is not None:
                budgets.append((f"{scope}:{owner.pk}", limit, duration))
        return budgets

    def wait(self) -> float:
        return max(self.wait_seconds, 1.0)


def _count(windows: list[tuple[str, int]]) -> list[int]:
    """Add one request to each (key, seconds) window and return how many each holds now."""
    with queueing.connection().pipeline() as pipe:
        for key, ttl in windows:
            pipe.incr(key)
            pipe.expire(key, ttl + 1)
        replies = pipe.execute()
    return [int(count) for count in replies[::2]]


# --- Failed sign-ins: API keys and admin passwords ---------------------------------------------

FAILED_KEY = "conveyor:failed-login:{}"


def client_address(request: HttpRequest | Request) -> str:
    """The client as the web server saw it (a proxy in front sets REMOTE_ADDR from its header)."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _failure_keys(request: HttpRequest | Request, account: str) -> tuple[str, str]:
    client = client_address(request)
    # An account is counted per client, so nobody elsewhere can lock its owner out.
    return FAILED_KEY.format(f"client:{client}"), FAILED_KEY.format(f"account:{account}:{client}")


def failed_login_wait(request: HttpRequest | Request, account: str) -> float:
    """Seconds until this client may try `account` again (0: now)."""
    limits = settings.CONVEYOR_FAILED_LOGINS
    per_client, per_account = _failure_keys(request, account)
    try:
        with queueing.connection().pipeline() as pipe:
            for key in (per_client, per_account):
                pipe.get(key)
                pipe.ttl(key)
            client_count, client_ttl, account_count, account_ttl = pipe.execute()
    except RedisError as error:
        logger.warning("failed sign-ins not counted, Redis unreachable: %s", error)
        return 0.0
    waits = [
        float(max(ttl, 1))
        for count, ttl, limit in (
            (client_count, client_ttl, limits["per_client"]),
            (account_count, account_ttl, limits["per_account"]),
        )
        if count is not None and int(count) >= limit
    ]
    return max(waits, default=0.0)


def record_failed_login(request: HttpRequest | Request, account: str) -> None:
    window = settings.CONVEYOR_FAILED_LOGINS["window_seconds"]
    try:
        with queueing.connection().pipeline() as pipe:
            for key in _failure_keys(request, account):
                pipe.incr(key)
                pipe.expire(key, window, nx=True)
            pipe.execute()
    except RedisError as error:
        logger.warning("failed sign-in not counted, Redis unreachable: %s", error)


def clear_failed_logins(request: HttpRequest | Request, account: str) -> None:
    with contextlib.suppress(RedisError):
        queueing.connection().delete(_failure_keys(request, account)[1])


class ThrottledApiKeyAuthentication(ApiKeyAuthentication):
    """API keys, with failed attempts counted per client and per key: past the limits 429."""

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, ApiKey] | None:
        account = _key_lookup(request)
        if account is None:
            return super().authenticate(request)
        wait = failed_login_wait(request, account)
        if wait:
            raise exceptions.Throttled(wait, "Too many failed API key attempts from this client.")
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            record_failed_login(request, account)
            raise


def _key_lookup(request: Request) -> str | None:
    """The lookup part of the key sent (`cvk_<lookup>_…`), or None when no key was sent."""
    header = get_authorization_header(request).decode(errors="replace").split()
    if len(header) < 2 or header[0].lower() not in ApiKeyAuthentication.keywords:
        return None
    return "key:" + header[1].partition("_")[2].partition("_")[0][:32]
