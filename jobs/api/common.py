"""What the API views of every app share: documented errors, tenant requests, cursor pages,
status words."""

import copy
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from django.conf import settings
from django.http import HttpRequest
from django.utils.dateparse import parse_datetime
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    Direction,
    OpenApiExample,
    OpenApiResponse,
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request

from jobs.models import Priority
from jobs.redaction import redact
from jobs.transport import queueing
from tenants.permissions import HasTenantRole, TenantRequest

# --- Errors, as the schema shows them ----------------------------------------------------------


class ErrorOutput(serializers.Serializer):
    detail = serializers.CharField()


ERRORS = {
    400: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description="Invalid input: a list of messages per field, or `detail` (e.g. which "
        "tenant: send X-Tenant).",
        examples=[
            OpenApiExample(
                "Field errors",
                value={"payload": {"seconds": ["This field is required."]}},
                status_codes=["400"],
            )
        ],
    ),
    401: OpenApiResponse(ErrorOutput, description="No credentials, or an invalid API key."),
    403: OpenApiResponse(
        ErrorOutput, description="The role this needs is missing (the message names it)."
    ),
    404: OpenApiResponse(
        ErrorOutput,
        description="No such tenant, object or page here; another tenant's objects answer the "
        "same.",
    ),
    409: OpenApiResponse(
        ErrorOutput, description="Its current status does not allow this (the message says why)."
    ),
    429: OpenApiResponse(
        ErrorOutput, description="Too many requests for this tenant: wait `Retry-After` seconds."
    ),
    503: OpenApiResponse(
        ErrorOutput, description="Redis is unreachable: retry after `Retry-After` seconds."
    ),
}
TENANT_ERRORS = (400, 401, 403, 404, 429)

# What a member may choose when enqueueing or scheduling (settings.CONVEYOR_TENANT_LIMITS).
TENANT_LIMITS = settings.CONVEYOR_TENANT_LIMITS
TENANT_PRIORITIES = [
    (value, label) for value, label in Priority.choices if value in TENANT_LIMITS["priorities"]
]


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """The documented error answers with these status codes."""
    return {code: ERRORS[code] for code in codes}


class ConveyorAutoSchema(AutoSchema):
    """Documents on each operation the errors any view behind credentials may answer.

    Every such view may answer 400 (malformed input, NUL in the URL), 401 and 403; 404 too
    when it names a tenant (X-Tenant), an object (a path parameter) or a page; 429 when it is
    throttled. What only some views answer (409, 503, …) stays with their `extend_schema`.
    """

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code in self._shared_error_codes():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(
                    ERRORS[code], str(code), direction=direction
                )
        return dict(sorted(responses.items()))

    def _shared_error_codes(self) -> list[int]:
        permissions = getattr(self.view, "permission_classes", [])
        if all(_involves(permission, AllowAny) for permission in permissions):
            return []
        codes = [400, 401, 403]
        if (
            any(_involves(permission, HasTenantRole) for permission in permissions)
            or "{" in self.path
            or self._get_paginator() is not None
        ):
            codes.append(404)
        if getattr(self.view, "throttle_classes", []):
            codes.append(429)
        return codes


def _involves(permission: Any, kind: type) -> bool:
    """Whether a permission class, or a side of a composed one (`A | B`), is a `kind`."""
    if isinstance(permission, type):
        return issubclass(permission, kind)
    sides = (getattr(permission, "op1_class", None), getattr(permission, "op2_class", None))
    return any(side is not None and _involves(side, kind) for side in sides)


def tenant_request(request: Request) -> TenantRequest:
    """`request` after `HasTenantRole` has set its tenant and role."""
    return cast(TenantRequest, request)


def require_redis() -> None:
    """Answer 503 (through the exception handler) before changing anything Redis must follow."""
    queueing.ping()


# --- Pagination --------------------------------------------------------------------------------


class CreatedAtCursorPagination(CursorPagination):
    """Cursor pages: no counts over big tables, and no row skipped or repeated as rows arrive."""

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        if (
            cursor is not None
            and cursor.position is not None
            and not _is_time(str(cursor.position))
        ):
            raise NotFound(self.invalid_cursor_message)
        return cursor


def _is_time(text: str) -> bool:
    try:
        return parse_datetime(text) is not None
    except ValueError:
        return False


# --- Status words of the previous release -------------------------------------------------------
#
# Rows that follow a job (reports, imports, exports, webhook deliveries) speak the engine's words
# since this release. For one release a client may send `Conveyor-Status-Words: legacy` to read,
# and filter by, the words it was written against; an old word that no longer exists (`dead`,
# `ready`, `running`, `delivering`) is read as its new one in any case.

LEGACY_WORDS_HEADER = "Conveyor-Status-Words"
_legacy_words: ContextVar[bool] = ContextVar("conveyor_legacy_status_words", default=False)


def legacy_status_words(get_response: Callable[[HttpRequest], Any]) -> Callable[..., Any]:
    """Middleware: notes whether the request asked for the previous release's status words."""

    def middleware(request: HttpRequest) -> Any:
        asked = request.headers.get(LEGACY_WORDS_HEADER, "").strip().lower() == "legacy"
        token = _legacy_words.set(asked)
        try:
            return get_response(request)
        finally:
            _legacy_words.reset(token)

    return middleware


@dataclass(frozen=True)
class StatusWords:
    """A row's statuses and the previous release's word for each that changed."""

    current: tuple[str, ...]
    old_for: Mapping[str, str]  # current word → the word the previous release used
    new_for: Mapping[str, str]  # a previous release's word → its current word

    def shown(self, value: str) -> str:
        return self.old_for.get(value, value) if _legacy_words.get() else value

    def read(self, value: str) -> str:
        """A status a client sent, as the current word (legacy clients' words translated)."""
        if _legacy_words.get() or value not in self.current:
            return self.new_for.get(value, value)
        return value


class StatusField(serializers.ChoiceField):
    """A row's status: shown and read in the current words, or the previous release's on request."""

    def __init__(self, *, words: StatusWords, **kwargs: Any) -> None:
        self.words = words
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> Any:
        return self.words.shown(super().to_representation(value))

    def to_internal_value(self, data: Any) -> Any:
        return super().to_internal_value(self.words.read(data) if isinstance(data, str) else data)


class RedactedJSONField(serializers.JSONField):
    """JSON shown only through `redact()`: values under secret-looking keys are masked."""

    def to_representation(self, value: Any) -> Any:
        return redact(value)


@extend_schema_field(OpenApiTypes.OBJECT)
class RedactedObjectField(RedactedJSONField):
    """A redacted JSON object (payloads, variables, custom fields, event bodies, log data)."""


# A serializer whose fields are built once per class; each instance binds copies of them.
# DRF builds a ModelSerializer's fields from the model's on every instance and deep-copies a
# serializer's declared fields: together most of what the enqueue request spent in Python.
# A field holds nothing of a request until it is bound, so a shallow copy is enough; nested
# serializers are deep-copied as DRF does. Only for serializers whose fields depend on neither
# the instance nor the request. (A comment, not a docstring: the schema would show it as the
# description of every serializer built on it.)
class PreparedFields(serializers.Serializer):
    _prepared: ClassVar[dict[type, dict[str, serializers.Field]]] = {}

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = self._prepared.get(type(self))
        if fields is None:
            fields = self._prepared[type(self)] = super().get_fields()
        return {name: _unbound_copy(field) for name, field in fields.items()}


def _unbound_copy(field: serializers.Field) -> serializers.Field:
    if isinstance(field, serializers.BaseSerializer):
        return copy.deepcopy(field)
    copied: Any = copy.copy(field)
    child = getattr(field, "child", None)
    if isinstance(child, serializers.Field):  # ListField, DictField: bound to the new copy
        copied.child = _unbound_copy(child)
        copied.child.parent = copied
    return cast(serializers.Field, copied)
