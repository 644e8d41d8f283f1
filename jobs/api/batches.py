"""API views: batches — create one with its members and callback, list, detail, cancel."""

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.urls import URLPattern, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.common import (
    TENANT_ERRORS,
    TENANT_PRIORITIES,
    CreatedAtCursorPagination,
    errors,
    require_redis,
    tenant_request,
)
from jobs.api.jobs import JOB_EXAMPLE, BulkCancelOutput, JobListView, _validated_payload
from jobs.models import Batch, Job, Priority
from jobs.selectors.batches import batch_counts, batch_progress, get_batch, list_batches
from jobs.selectors.jobs import list_jobs
from jobs.services.jobs import cancel_batch, create_batch, enqueue_jobs
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, TenantRequest

MAX_MEMBERS = 1000
SHOWN_MEMBERS = 200
BATCH_ID = OpenApiParameter("batch_id", OpenApiTypes.UUID, OpenApiParameter.PATH)

BATCH_EXAMPLE: dict[str, Any] = {
    "id": "0b7e5c2a-1f3d-4e6a-9b8c-7d6e5f4a3b2c",
    "description": "Nightly thumbnails",
    "callback_kind": "jobs.noop",
    "callback_payload": {"note": "all done"},
    "total": 3,
    "counts": {"queued": 1, "started": 1, "succeeded": 1},
    "progress": 33,
    "created_at": "2026-11-22T16:30:00.123456Z",
    "finished_at": None,
    "callback_job": None,
}


class BatchOutput(serializers.ModelSerializer):
    counts = serializers.SerializerMethodField(help_text="Members per status (non-zero only).")
    progress = serializers.SerializerMethodField(help_text="Percent of members that ended.")

    class Meta:
        model = Batch
        fields = [
            "id",
            "description",
            "callback_kind",
            "callback_payload",
            "total",
            "counts",
            "progress",
            "created_at",
            "finished_at",
            "callback_job",
        ]
        read_only_fields = fields

    def _counts(self, batch: Batch) -> dict[str, int]:
        # Counted once per batch for both fields.
        cached: dict[str, int] | None = getattr(batch, "_member_counts", None)
        if cached is None:
            cached = batch_counts(batch)
            batch._member_counts = cached  # type: ignore[attr-defined]
        return cached

    def get_counts(self, batch: Batch) -> dict[str, int]:
        return {name: n for name, n in self._counts(batch).items() if n}

    def get_progress(self, batch: Batch) -> int:
        return batch_progress(self._counts(batch))


class BatchMemberOutput(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = ["id", "kind", "status", "attempt", "created_at", "finished_at"]
        read_only_fields = fields


class BatchDetailOutput(BatchOutput):
    members = serializers.SerializerMethodField(
        help_text=f"The first {SHOWN_MEMBERS} members, oldest first; all of them: "
        "`GET jobs/?batch=<id>`."
    )

    class Meta(BatchOutput.Meta):
        fields = [*BatchOutput.Meta.fields, "members"]
        read_only_fields = fields

    def get_members(self, batch: Batch) -> list[dict[str, Any]]:
        members = list_jobs(tenant=batch.tenant).filter(batch=batch).order_by("created_at", "id")
        return BatchMemberOutput(members[:SHOWN_MEMBERS], many=True).data  # type: ignore[return-value]


class MemberInput(serializers.Serializer):
    kind = serializers.CharField(max_length=100, help_text="A registered kind: see `kinds/`.")
    payload = serializers.DictField(default=dict, help_text="Checked by the kind.")

    validate_kind = JobListView.Input.validate_kind

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        data["payload"] = _validated_payload(data["kind"], data["payload"])
        return data


@extend_schema_serializer(
    component_name="BatchCreateInput",
    examples=[
        OpenApiExample(
            "Three members and a callback",
            value={
                "description": "Nightly thumbnails",
                "members": [
                    {"kind": "jobs.sleep", "payload": {"seconds": 1}},
                    {"kind": "jobs.sleep", "payload": {"seconds": 2}},
                    {"kind": "jobs.noop", "payload": {}},
                ],
                "callback_kind": "jobs.noop",
                "callback_payload": {"note": "all done"},
            },
            request_only=True,
        )
    ],
)
class BatchInput(serializers.Serializer):
    description = serializers.CharField(max_length=200, required=False, default="")
    members = serializers.ListField(child=MemberInput(), min_length=1, max_length=MAX_MEMBERS)
    priority = serializers.ChoiceField(choices=TENANT_PRIORITIES, default=Priority.NORMAL)
    callback_kind = serializers.CharField(
        max_length=100,
        required=False,
        default="",
        help_text="Enqueued once every member has ended, with the batch id and counts added.",
    )
    callback_payload = serializers.DictField(default=dict)

    def validate_callback_kind(self, name: str) -> str:
        return JobListView.Input.validate_kind(self, name).name if name else ""  # type: ignore[arg-type]

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["callback_payload"] and not data["callback_kind"]:
            raise ValidationError({"callback_payload": ["Give callback_kind with it."]})
        return data


class BatchListView(generics.ListAPIView):
    """`batches/`: GET lists the tenant's batches (viewer and up), POST creates one (agent)."""

    permission_classes = [HasTenantRole]
    queryset = Batch.objects.none()  # the model, for the schema
    serializer_class = BatchOutput
    pagination_class = CreatedAtCursorPagination

    access_area = "jobs"

    def get_queryset(self) -> QuerySet[Batch]:
        return list_batches(tenant=tenant_request(self.request).tenant)

    @extend_schema(
        operation_id="batches_list",
        parameters=[TENANT_PARAMETER],
        responses={200: BatchOutput(many=True), **errors(*TENANT_ERRORS)},
        examples=[OpenApiExample("A page of batches", value=BATCH_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The tenant's batches, newest first, with counts and progress."""
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="batches_create",
        parameters=[TENANT_PARAMETER],
        request=BatchInput,
        responses={202: BatchDetailOutput, **errors(*TENANT_ERRORS)},
        examples=[OpenApiExample("Created", value=BATCH_EXAMPLE, response_only=True)],
    )
    def post(self, request: TenantRequest) -> Response:
        """Create a batch with up to 1,000 members in one transaction (all or none); its
        callback kind runs once when every member has ended."""
        body = BatchInput(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        data = body.validated_data
        groups: dict[str, list[dict[str, Any]]] = {}
        for member in data["members"]:
            groups.setdefault(member["kind"].name, []).append(member["payload"])
        with transaction.atomic():
            batch = create_batch(
                tenant=request.tenant,
                callback_kind=data["callback_kind"],
                callback_payload=data["callback_payload"],
                description=data["description"],
            )
            for kind, payloads in groups.items():
                enqueue_jobs(
                    tenant=request.tenant,
                    kind=kind,
                    payloads=payloads,
                    priority=data["priority"],
                    batch=batch,
                    by=request.user,
                )
        return Response(BatchDetailOutput(batch).data, status=status.HTTP_202_ACCEPTED)


class BatchDetailView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "jobs"

    @extend_schema(
        parameters=[TENANT_PARAMETER, BATCH_ID],
        responses={200: BatchDetailOutput, **errors(*TENANT_ERRORS)},
        examples=[
            OpenApiExample(
                "A batch with its members",
                value={
                    **BATCH_EXAMPLE,
                    "members": [
                        {
                            "id": JOB_EXAMPLE["id"],
                            "kind": "jobs.sleep",
                            "status": "succeeded",
                            "attempt": 1,
                            "created_at": "2026-11-22T16:30:00.123456Z",
                            "finished_at": "2026-11-22T16:30:01.123456Z",
                        }
                    ],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: TenantRequest, batch_id: str) -> Response:
        """The batch with its counts, progress and first members."""
        return Response(BatchDetailOutput(get_batch(tenant=request.tenant, batch_id=batch_id)).data)


class BatchCancelView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "jobs"

    @extend_schema(
        parameters=[TENANT_PARAMETER, BATCH_ID],
        request=None,
        responses={200: BulkCancelOutput, **errors(*TENANT_ERRORS, 503)},
        examples=[
            OpenApiExample(
                "Counts",
                value={"canceled": 12, "cancel_requested": 1, "skipped": 3},
                response_only=True,
            )
        ],
    )
    def post(self, request: TenantRequest, batch_id: str) -> Response:
        """Cancel every member that has not ended; the callback runs once all have ended."""
        batch = get_batch(tenant=request.tenant, batch_id=batch_id)
        require_redis()
        return Response(BulkCancelOutput(cancel_batch(batch, by=request.user)).data)


urlpatterns: list[URLPattern] = [
    path("batches/", BatchListView.as_view(), name="batch-list"),
    # Ids are matched as text so that a malformed one answers a JSON 404, not Django's page.
    path("batches/<str:batch_id>/", BatchDetailView.as_view(), name="batch-detail"),
    path("batches/<str:batch_id>/cancel/", BatchCancelView.as_view(), name="batch-cancel"),
]
