"""API views: webhook endpoints (CRUD, rotate secret, send a test) and deliveries (list, replay).

Admins and owners only. An endpoint's secret is in the answers to create and rotate-secret,
never again. Another tenant's endpoints and deliveries answer 404 like missing ones.
"""

from typing import Any, cast
from uuid import UUID

from django.db.models import QuerySet
from django.urls import URLPattern, URLResolver, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from communications.models import EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from communications.models.webhooks import ALL_EVENTS
from communications.selectors.webhooks import (
    delivery_attempts,
    get_delivery,
    get_endpoint,
    list_deliveries,
    list_endpoints,
)
from communications.services.webhooks import (
    MAX_GRACE,
    SUBSCRIBABLE,
    create_endpoint,
    delete_endpoint,
    replay_deliveries,
    replay_delivery,
    rotate_secret,
    send_test_event,
    update_endpoint,
)
from jobs.api.common import (
    CreatedAtCursorPagination,
    RedactedObjectField,
    StatusField,
    StatusWords,
)
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, TenantRequest

TAGS = ["webhooks"]
ERRORS = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description="Invalid input: messages per field."),
    403: OpenApiResponse(OpenApiTypes.OBJECT, description="This needs the admin role or higher."),
    404: OpenApiResponse(
        OpenApiTypes.OBJECT, description="Not found here; another tenant's answers the same."
    ),
    409: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description="Not now: the delivery is still being sent, or its endpoint is disabled.",
    ),
}
EVENT_CHOICES = [ALL_EVENTS, *SUBSCRIBABLE]


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERRORS[code] for code in codes}


def tenant_of(request: Request) -> Any:
    return cast(TenantRequest, request).tenant


# --- Input and output ---------------------------------------------------------------------------


class WebhookEndpointInput(serializers.Serializer):
    url = serializers.URLField(
        max_length=2000, help_text="http(s) URL on a public address; it receives signed POSTs."
    )
    description = serializers.CharField(max_length=200, allow_blank=True, default="")
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_CHOICES),
        allow_empty=False,
        help_text='Event types to receive, or ["*"] for all.',
    )
    is_active = serializers.BooleanField(default=True)
    legacy_signature = serializers.BooleanField(
        default=True,
        help_text=(
            "Also send the Conveyor-Timestamp and Conveyor-Signature headers of earlier "
            "releases beside the Standard Webhooks ones (webhook-id, webhook-timestamp, "
            "webhook-signature)."
        ),
    )


class WebhookEndpointOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields: tuple[str, ...] = (
            "id",
            "url",
            "description",
            "event_types",
            "is_active",
            "legacy_signature",
            "secret_hint",
            "previous_secret_expires_at",
            "consecutive_failures",
            "dead_deliveries",
            "last_success_at",
            "last_failure_at",
            "disabled_at",
            "disabled_reason",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class WebhookEndpointSecretOutput(WebhookEndpointOutput):
    secret = serializers.CharField(
        help_text="Signs every delivery. Shown only now: store it with your receiver."
    )

    class Meta(WebhookEndpointOutput.Meta):
        fields = (*WebhookEndpointOutput.Meta.fields, "secret")
        read_only_fields = fields


class WebhookEndpointPageOutput(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = WebhookEndpointOutput(many=True)


class WebhookRotateSecretInput(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        min_value=0,
        max_value=MAX_GRACE,
        required=False,
        help_text="How long the old secret keeps signing too (default: the setting, 24 h).",
    )


DELIVERY_WORDS = StatusWords(
    current=tuple(WebhookDelivery.Status.values),
    old_for={"started": "delivering", "retrying": "failed", "failed": "dead", "canceled": "dead"},
    new_for={"delivering": "started", "failed": "retrying", "dead": "failed"},
)
ATTEMPT_WORDS = StatusWords(
    current=tuple(WebhookAttempt.Outcome.values),
    old_for={"retrying": "retry", "failed": "dead"},
    new_for={"retry": "retrying", "dead": "failed"},
)


class WebhookAttemptOutput(serializers.Serializer):
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField()
    outcome = StatusField(words=ATTEMPT_WORDS, choices=WebhookAttempt.Outcome.choices)
    response_code = serializers.IntegerField(allow_null=True)
    response_excerpt = serializers.CharField()
    error = serializers.CharField()
    retry_in = serializers.IntegerField(allow_null=True)
    address = serializers.CharField()


class WebhookDeliveryOutput(serializers.ModelSerializer):
    status = StatusField(words=DELIVERY_WORDS, choices=WebhookDelivery.Status.choices)

    class Meta:
        model = WebhookDelivery
        fields: tuple[str, ...] = (
            "id",
            "endpoint",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "last_response_code",
            "last_response_excerpt",
            "last_error",
            "last_duration_ms",
            "job",
            "created_at",
            "updated_at",
            "delivered_at",
        )
        read_only_fields = fields


class WebhookDeliveryDetailOutput(WebhookDeliveryOutput):
    payload = RedactedObjectField(
        help_text="The body sent: id, type, created, tenant, data (secret-looking keys masked)."
    )
    attempt_log = serializers.SerializerMethodField()

    class Meta(WebhookDeliveryOutput.Meta):
        fields = (*WebhookDeliveryOutput.Meta.fields, "payload", "attempt_log")
        read_only_fields = fields

    @extend_schema_field(WebhookAttemptOutput(many=True))
    def get_attempt_log(self, delivery: WebhookDelivery) -> list[dict[str, Any]]:
        return cast(
            list[dict[str, Any]], WebhookAttemptOutput(delivery_attempts(delivery), many=True).data
        )


class WebhookDeliveryFilters(serializers.Serializer):
    endpoint = serializers.UUIDField(required=False)
    status = StatusField(
        words=DELIVERY_WORDS, choices=WebhookDelivery.Status.choices, required=False
    )
    event_type = serializers.ChoiceField(choices=EventType.choices, required=False)
    event_id = serializers.UUIDField(required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class WebhookBulkReplayInput(WebhookDeliveryFilters):
    ids = serializers.ListField(
        child=serializers.UUIDField(), max_length=1000, required=False, help_text="Only these."
    )
    status = StatusField(
        words=DELIVERY_WORDS,
        choices=WebhookDelivery.Status.choices,
        default=WebhookDelivery.Status.FAILED,
        help_text="failed (the default), canceled or succeeded: only finished deliveries are "
        "replayed.",
    )

    def validate_status(self, value: str) -> str:
        if value not in WebhookDelivery.FINISHED:
            raise serializers.ValidationError(
                "Only failed, canceled or succeeded deliveries are replayed."
            )
        return value


class WebhookBulkReplayOutput(serializers.Serializer):
    replayed = serializers.IntegerField(help_text="Deliveries handed to a new job.")
    skipped = serializers.IntegerField(help_text="Matched but not replayable now.")


DELIVERY_FILTER_PARAMETERS = [
    OpenApiParameter("endpoint", OpenApiTypes.UUID, description="Only this endpoint's."),
    OpenApiParameter(
        "status", OpenApiTypes.STR, enum=WebhookDelivery.Status.values, description="Only these."
    ),
    OpenApiParameter("event_type", OpenApiTypes.STR, enum=EventType.values),
    OpenApiParameter("event_id", OpenApiTypes.UUID, description="Every delivery of one event."),
    OpenApiParameter("created_after", OpenApiTypes.DATETIME),
    OpenApiParameter("created_before", OpenApiTypes.DATETIME),
]


def filtered_deliveries(request: Request, filters: dict[str, Any]) -> QuerySet[WebhookDelivery]:
    tenant = tenant_of(request)
    endpoint = filters.pop("endpoint", None)
    if endpoint is not None:
        filters["endpoint"] = get_endpoint(tenant=tenant, pk=endpoint)
    return list_deliveries(tenant=tenant, **filters)


# --- Endpoints ----------------------------------------------------------------------------------


class AdminsOnly(APIView):
    permission_classes = [HasTenantRole]
    access_area = "webhooks"


class WebhookEndpointListView(AdminsOnly):
    @extend_schema(
        operation_id="webhook_endpoints_list",
        tags=TAGS,
        parameters=[TENANT_PARAMETER, OpenApiParameter("page", OpenApiTypes.INT)],
        responses={200: WebhookEndpointPageOutput, **errors(403)},
    )
    def get(self, request: Request) -> Response:
        """The tenant's webhook endpoints, newest first."""
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(list_endpoints(tenant=tenant_of(request)), request, self)
        return paginator.get_paginated_response(WebhookEndpointOutput(page, many=True).data)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=WebhookEndpointInput,
        responses={201: WebhookEndpointSecretOutput, **errors(400, 403)},
    )
    def post(self, request: Request) -> Response:
        """Add an endpoint; the answer holds its signing secret, shown this once."""
        data = WebhookEndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = create_endpoint(
            tenant=tenant_of(request), by=request.user, **data.validated_data
        )
        return Response(WebhookEndpointSecretOutput(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookEndpointDetailView(AdminsOnly):
    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={200: WebhookEndpointOutput, **errors(403, 404)},
    )
    def get(self, request: Request, pk: UUID) -> Response:
        return Response(WebhookEndpointOutput(get_endpoint(tenant=tenant_of(request), pk=pk)).data)

    @extend_schema(
        operation_id="webhook_endpoints_update",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=WebhookEndpointInput,
        responses={200: WebhookEndpointOutput, **errors(400, 403, 404)},
    )
    def put(self, request: Request, pk: UUID) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(
        operation_id="webhook_endpoints_partial_update",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=WebhookEndpointInput(partial=True),
        responses={200: WebhookEndpointOutput, **errors(400, 403, 404)},
    )
    def patch(self, request: Request, pk: UUID) -> Response:
        """Change some fields; `is_active: true` re-enables a disabled endpoint."""
        return self._update(request, pk, partial=True)

    @extend_schema(
        operation_id="webhook_endpoints_destroy",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: Request, pk: UUID) -> Response:
        """Delete the endpoint with its deliveries."""
        delete_endpoint(get_endpoint(tenant=tenant_of(request), pk=pk), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, pk: UUID, *, partial: bool) -> Response:
        endpoint = get_endpoint(tenant=tenant_of(request), pk=pk)
        data = WebhookEndpointInput(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        endpoint = update_endpoint(endpoint, by=request.user, **data.validated_data)
        return Response(WebhookEndpointOutput(endpoint).data)


class WebhookEndpointRotateSecretView(AdminsOnly):
    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=WebhookRotateSecretInput,
        responses={200: WebhookEndpointSecretOutput, **errors(400, 403, 404)},
    )
    def post(self, request: Request, pk: UUID) -> Response:
        """A new secret, shown this once; the old one also signs until the grace period ends."""
        endpoint = get_endpoint(tenant=tenant_of(request), pk=pk)
        data = WebhookRotateSecretInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = rotate_secret(endpoint, by=request.user, **data.validated_data)
        return Response(WebhookEndpointSecretOutput(endpoint).data)


class WebhookEndpointTestView(AdminsOnly):
    @extend_schema(
        operation_id="webhook_endpoints_test",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=None,
        responses={202: WebhookDeliveryOutput, **errors(403, 404)},
    )
    def post(self, request: Request, pk: UUID) -> Response:
        """Send a `webhook.test` event to this endpoint; follow it as a delivery."""
        endpoint = get_endpoint(tenant=tenant_of(request), pk=pk)
        delivery = send_test_event(endpoint, by=request.user)
        return Response(WebhookDeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)


# --- Deliveries ---------------------------------------------------------------------------------


class WebhookDeliveryListView(AdminsOnly):
    pagination_class = CreatedAtCursorPagination

    @extend_schema(
        operation_id="webhook_deliveries_list",
        tags=TAGS,
        parameters=[
            TENANT_PARAMETER,
            *DELIVERY_FILTER_PARAMETERS,
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter("page_size", OpenApiTypes.INT),
        ],
        responses={200: WebhookDeliveryOutput(many=True), **errors(400, 403)},
    )
    def get(self, request: Request) -> Response:
        """The tenant's deliveries, newest first, paginated by cursor."""
        filters = WebhookDeliveryFilters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        deliveries = filtered_deliveries(request, dict(filters.validated_data))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(deliveries, request, self)
        return paginator.get_paginated_response(WebhookDeliveryOutput(page, many=True).data)


class WebhookDeliveryDetailView(AdminsOnly):
    @extend_schema(
        operation_id="webhook_deliveries_retrieve",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={200: WebhookDeliveryDetailOutput, **errors(403, 404)},
    )
    def get(self, request: Request, pk: UUID) -> Response:
        """The delivery with the body sent and every attempt's outcome."""
        delivery = get_delivery(tenant=tenant_of(request), pk=pk)
        return Response(WebhookDeliveryDetailOutput(delivery).data)


class WebhookDeliveryReplayView(AdminsOnly):
    @extend_schema(
        operation_id="webhook_deliveries_replay",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=None,
        responses={202: WebhookDeliveryOutput, **errors(403, 404, 409)},
    )
    def post(self, request: Request, pk: UUID) -> Response:
        """Send a finished delivery (failed, canceled or succeeded) again with fresh attempts."""
        delivery = get_delivery(tenant=tenant_of(request), pk=pk)
        delivery = replay_delivery(delivery, by=request.user)
        return Response(WebhookDeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryBulkReplayView(AdminsOnly):
    @extend_schema(
        operation_id="webhook_deliveries_bulk_replay",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=WebhookBulkReplayInput,
        responses={200: WebhookBulkReplayOutput, **errors(400, 403, 404)},
    )
    def post(self, request: Request) -> Response:
        """Replay every delivery the filters match (status `failed` unless given) whose endpoint
        is active; answers how many were replayed and skipped."""
        data = WebhookBulkReplayInput(data=request.data)
        data.is_valid(raise_exception=True)
        filters = dict(data.validated_data)
        ids = filters.pop("ids", None)
        deliveries = filtered_deliveries(request, filters)
        if ids is not None:
            deliveries = deliveries.filter(pk__in=ids)
        return Response(
            WebhookBulkReplayOutput(replay_deliveries(deliveries, by=request.user)).data
        )


urlpatterns: list[URLPattern | URLResolver] = [
    path("webhooks/endpoints/", WebhookEndpointListView.as_view(), name="webhook-endpoint-list"),
    path(
        "webhooks/endpoints/<uuid:pk>/",
        WebhookEndpointDetailView.as_view(),
        name="webhook-endpoint-detail",
    ),
    path(
        "webhooks/endpoints/<uuid:pk>/rotate-secret/",
        WebhookEndpointRotateSecretView.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path(
        "webhooks/endpoints/<uuid:pk>/test/",
        WebhookEndpointTestView.as_view(),
        name="webhook-endpoint-test",
    ),
    path("webhooks/deliveries/", WebhookDeliveryListView.as_view(), name="webhook-delivery-list"),
    path(
        "webhooks/deliveries/replay/",
        WebhookDeliveryBulkReplayView.as_view(),
        name="webhook-delivery-bulk-replay",
    ),
    path(
        "webhooks/deliveries/<uuid:pk>/",
        WebhookDeliveryDetailView.as_view(),
        name="webhook-delivery-detail",
    ),
    path(
        "webhooks/deliveries/<uuid:pk>/replay/",
        WebhookDeliveryReplayView.as_view(),
        name="webhook-delivery-replay",
    ),
]
