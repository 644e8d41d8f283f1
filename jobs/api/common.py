"""What the API views of every app share: documented errors, tenant requests, cursor pages."""

from typing import cast

from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from jobs.transport import queueing
from tenants.permissions import TenantRequest

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
        ErrorOutput, description="No such job or tenant here; another tenant's answers the same."
    ),
    409: OpenApiResponse(ErrorOutput, description="The job's status does not allow this."),
    429: OpenApiResponse(
        ErrorOutput, description="Too many requests for this tenant: wait `Retry-After` seconds."
    ),
    503: OpenApiResponse(
        ErrorOutput, description="Redis is unreachable: retry after `Retry-After` seconds."
    ),
}
TENANT_ERRORS = (400, 401, 403, 404, 429)


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """The documented error answers with these status codes."""
    return {code: ERRORS[code] for code in codes}


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
