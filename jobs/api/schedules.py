"""API views: schedules — list, create, read, change, delete, and run now.

Members of the tenant read; admins and owners write (PRODUCT.md §2). Every write is one call
to jobs.services.schedules; another tenant's schedule answers 404 like a missing one.
"""

from uuid import UUID

from django.urls import URLPattern, path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.common import TENANT_PRIORITIES, RedactedObjectField
from jobs.models import Job, Schedule
from jobs.selectors.schedules import get_schedule, list_schedules
from jobs.services.schedules import (
    create_schedule,
    delete_schedule,
    run_schedule_now,
    update_schedule,
)
from jobs.triggers import upcoming_runs
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, TenantRequest

TAGS = ["schedules"]
ERRORS = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description="Invalid input: messages per field."),
    403: OpenApiResponse(OpenApiTypes.OBJECT, description="Your role here is too low."),
    404: OpenApiResponse(
        OpenApiTypes.OBJECT, description="No such schedule here; another tenant's answers the same."
    ),
    409: OpenApiResponse(
        OpenApiTypes.OBJECT, description="Refused: a built-in schedule, or a kind that cannot run."
    ),
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERRORS[code] for code in codes}


# --- Input and output ---------------------------------------------------------------------------


class ScheduleInput(serializers.Serializer):
    """A schedule as a client writes it: exactly one of cron, interval_seconds and run_at."""

    name = serializers.CharField(max_length=200)
    kind = serializers.CharField(max_length=100, help_text="A registered kind, e.g. jobs.noop.")
    payload = serializers.JSONField(default=dict, help_text="The kind's arguments, an object.")
    cron = serializers.CharField(
        max_length=100,
        allow_blank=True,
        default="",
        help_text="Five fields (minute hour day month weekday) or an alias such as @daily.",
    )
    time_zone = serializers.CharField(
        max_length=64, default="UTC", help_text="IANA name the cron expression is read in."
    )
    interval_seconds = serializers.IntegerField(min_value=1, allow_null=True, default=None)
    run_at = serializers.DateTimeField(allow_null=True, default=None, help_text="Run once then.")
    enabled = serializers.BooleanField(default=True)
    queue = serializers.CharField(max_length=50, allow_blank=True, default="")
    priority = serializers.ChoiceField(choices=TENANT_PRIORITIES, allow_blank=True, default="")
    overlap_policy = serializers.ChoiceField(
        choices=Schedule.OverlapPolicy.choices, default=Schedule.OverlapPolicy.SKIP
    )
    missed_run_policy = serializers.ChoiceField(
        choices=Schedule.MissedRunPolicy.choices, default=Schedule.MissedRunPolicy.RUN_ONCE
    )
    starts_at = serializers.DateTimeField(allow_null=True, default=None)
    ends_at = serializers.DateTimeField(allow_null=True, default=None)


class JobSummaryOutput(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = ("id", "kind", "status", "queue", "priority", "created_at", "finished_at")


class ScheduleOutput(serializers.ModelSerializer):
    payload = RedactedObjectField()
    last_job = JobSummaryOutput(allow_null=True)

    class Meta:
        model = Schedule
        fields: tuple[str, ...] = (
            "id",
            "name",
            "kind",
            "payload",
            "trigger",
            "cron",
            "time_zone",
            "interval_seconds",
            "run_at",
            "enabled",
            "queue",
            "priority",
            "overlap_policy",
            "missed_run_policy",
            "starts_at",
            "ends_at",
            "next_run_at",
            "last_run_at",
            "last_job",
            "run_count",
            "is_system",
            "created_at",
            "updated_at",
        )


class ScheduleDetailOutput(ScheduleOutput):
    next_runs = serializers.SerializerMethodField(help_text="The next five run times, in UTC.")

    class Meta(ScheduleOutput.Meta):
        fields = (*ScheduleOutput.Meta.fields, "next_runs")

    def get_next_runs(self, schedule: Schedule) -> list[str]:
        if not schedule.enabled:
            return []
        return [run.isoformat() for run in upcoming_runs(schedule, after=timezone.now())]


class SchedulePageOutput(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ScheduleOutput(many=True)


class RunOutput(serializers.Serializer):
    job = JobSummaryOutput()


# --- Views --------------------------------------------------------------------------------------


class MembersReadAdminsWrite(APIView):
    """Any member reads; admins and owners write."""

    permission_classes = [HasTenantRole]

    access_area = "schedules"


class ScheduleListView(MembersReadAdminsWrite):
    class Query(serializers.Serializer):
        enabled = serializers.BooleanField(required=False, allow_null=True, default=None)
        kind = serializers.CharField(required=False, default="")

    @extend_schema(
        operation_id="schedules_list",
        tags=TAGS,
        parameters=[
            TENANT_PARAMETER,
            OpenApiParameter("enabled", OpenApiTypes.BOOL, description="Only (not) enabled."),
            OpenApiParameter("kind", OpenApiTypes.STR, description="Only schedules of this kind."),
            OpenApiParameter("page", OpenApiTypes.INT),
        ],
        responses={200: SchedulePageOutput, **errors(400, 403)},
    )
    def get(self, request: TenantRequest) -> Response:
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        schedules = list_schedules(tenant=request.tenant, **query.validated_data)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(schedules, request, view=self)
        return paginator.get_paginated_response(ScheduleOutput(page, many=True).data)

    @extend_schema(
        operation_id="schedules_create",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=ScheduleInput,
        responses={201: ScheduleDetailOutput, **errors(400, 403)},
    )
    def post(self, request: TenantRequest) -> Response:
        data = ScheduleInput(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = create_schedule(tenant=request.tenant, by=request.user, **data.validated_data)
        return Response(ScheduleDetailOutput(schedule).data, status=status.HTTP_201_CREATED)


class ScheduleDetailView(MembersReadAdminsWrite):
    @extend_schema(
        operation_id="schedules_retrieve",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={200: ScheduleDetailOutput, **errors(403, 404)},
    )
    def get(self, request: TenantRequest, pk: UUID) -> Response:
        schedule = get_schedule(tenant=request.tenant, pk=pk)
        return Response(ScheduleDetailOutput(schedule).data)

    @extend_schema(
        operation_id="schedules_update",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=ScheduleInput,
        responses={200: ScheduleDetailOutput, **errors(400, 403, 404)},
    )
    def put(self, request: TenantRequest, pk: UUID) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(
        operation_id="schedules_partial_update",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=ScheduleInput(partial=True),
        responses={200: ScheduleDetailOutput, **errors(400, 403, 404)},
    )
    def patch(self, request: TenantRequest, pk: UUID) -> Response:
        return self._update(request, pk, partial=True)

    @extend_schema(
        operation_id="schedules_destroy",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={204: None, **errors(403, 404, 409)},
    )
    def delete(self, request: TenantRequest, pk: UUID) -> Response:
        delete_schedule(get_schedule(tenant=request.tenant, pk=pk), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: TenantRequest, pk: UUID, *, partial: bool) -> Response:
        schedule = get_schedule(tenant=request.tenant, pk=pk)
        data = ScheduleInput(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        schedule = update_schedule(schedule, by=request.user, **data.validated_data)
        return Response(ScheduleDetailOutput(schedule).data)


class ScheduleRunView(MembersReadAdminsWrite):
    @extend_schema(
        operation_id="schedules_run",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=None,
        responses={202: RunOutput, **errors(400, 403, 404, 409)},
        description="Enqueue one job of the schedule now, counted as a run.",
    )
    def post(self, request: TenantRequest, pk: UUID) -> Response:
        job = run_schedule_now(get_schedule(tenant=request.tenant, pk=pk), by=request.user)
        return Response(RunOutput({"job": job}).data, status=status.HTTP_202_ACCEPTED)


urlpatterns: list[URLPattern] = [
    path("schedules/", ScheduleListView.as_view(), name="schedule-list"),
    path("schedules/<uuid:pk>/", ScheduleDetailView.as_view(), name="schedule-detail"),
    path("schedules/<uuid:pk>/run/", ScheduleRunView.as_view(), name="schedule-run"),
]
