"""API key authentication: `Authorization: Bearer cvk_<lookup>_<secret>` (or `Token …`)."""

import hmac
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from tenants.models import ApiKey
from tenants.selectors import find_api_key

LAST_USED_PRECISION = timedelta(minutes=1)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Send the API key as 'Authorization: Bearer <key>'."
            )
        return self._check(header[1])

    def _check(self, raw_key: str) -> tuple[AbstractBaseUser, ApiKey]:
        prefix, _, rest = raw_key.partition("_")
        lookup, _, secret = rest.partition("_")
        # The user's role in the key's tenant comes in the same query (`resolve_tenant` uses it).
        key = find_api_key(lookup)
        if (
            prefix != ApiKey.PREFIX
            or key is None
            or not hmac.compare_digest(key.digest, ApiKey.hash_secret(secret))
        ):
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        if not key.user.is_active:
            raise exceptions.AuthenticationFailed("The key's user is inactive.")
        self._record_use(key)
        return key.user, key

    def _record_use(self, key: ApiKey) -> None:
        # At most one write a minute per key: a busy application must not write on every call.
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_PRECISION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"
