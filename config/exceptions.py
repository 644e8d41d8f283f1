"""One place where domain errors become API answers.

Every error answers a JSON object: `{"detail": "..."}`, or for 400 one list of messages per
field (`{"payload": {"seconds": ["This field is required."]}}`).
"""

from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from redis.exceptions import RedisError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

REDIS_RETRY_AFTER = 5


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class RedisUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Redis is unreachable, so this cannot be done now: try again shortly."
    default_code = "redis_unavailable"


class DomainError(Exception):
    """A rule of the product refused the action; the message says why (answered as 409)."""


class TooSoon(DomainError):
    """Refused for now, allowed again after `retry_after` seconds (answered as 429)."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def handle_api_exception(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = exception_handler(_as_api_exception(exc), context)
    if response is None:
        return None
    if isinstance(exc, RedisError):
        response["Retry-After"] = str(REDIS_RETRY_AFTER)
    if isinstance(response.data, list):  # ValidationError("…") without a field
        response.data = {"detail": " ".join(str(message) for message in response.data)}
    return response


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, ObjectDoesNotExist):
        return exceptions.NotFound()
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
    if isinstance(exc, PermissionDenied) and exc.args:  # a service's refusal says why
        return exceptions.PermissionDenied(str(exc))
    if isinstance(exc, TooSoon):
        return exceptions.Throttled(wait=exc.retry_after, detail=str(exc))
    if isinstance(exc, DomainError):
        return Conflict(str(exc))
    if isinstance(exc, RedisError):
        return RedisUnavailable()
    if isinstance(exc, SuspiciousOperation):  # e.g. too many form fields: the client's fault
        return exceptions.ParseError(str(exc))
    return exc
