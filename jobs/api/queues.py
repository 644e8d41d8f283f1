"""API views: queues, workers and health — for operators, tenant admins and load balancers."""

from typing import Any

from django.conf import settings
from django.urls import URLPattern, path
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.common import TENANT_ERRORS, errors, require_redis, tenant_request
from jobs.selectors.health import list_health_checks
from jobs.selectors.queues import (
    health_report,
    list_workers,
    queue_stats,
    readiness,
    tenant_queue_stats,
    tenant_workers,
)
from jobs.services.queues import clean_queue, empty_queue, pause_queue, resume_queue
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, IsSuperuser

OPERATOR_ERRORS = (401, 403, 404, 429, 503)

# --- Output ------------------------------------------------------------------------------------


class QueueOutput(serializers.Serializer):
    name = serializers.CharField()
    waiting = serializers.IntegerField()
    waiting_by_priority = serializers.DictField(child=serializers.IntegerField())
    started = serializers.IntegerField()
    scheduled = serializers.IntegerField()
    deferred = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Dead letters RQ still holds.")
    finished = serializers.IntegerField()
    canceled = serializers.IntegerField()
    workers = serializers.IntegerField(help_text="Workers listening to this queue.")
    slots = serializers.IntegerField(
        help_text="Jobs the workers listening to this queue can run at once (their concurrency)."
    )
    busy_slots = serializers.IntegerField(help_text="Jobs of this queue running now.")
    paused = serializers.BooleanField()
    oldest_waiting_seconds = serializers.FloatField(allow_null=True)
    throughput_per_minute = serializers.FloatField(help_text="Over the last 5 minutes.")


class WorkerOutput(serializers.Serializer):
    name = serializers.CharField()
    hostname = serializers.CharField()
    pid = serializers.IntegerField(allow_null=True)
    queues = serializers.ListField(child=serializers.CharField())
    state = serializers.CharField()
    concurrency = serializers.IntegerField(help_text="How many jobs it runs at once.")
    busy_slots = serializers.IntegerField(help_text="How many it runs now.")
    running_job_ids = serializers.ListField(
        child=serializers.CharField(), help_text="The jobs in its busy slots."
    )
    current_job_id = serializers.CharField(
        allow_null=True, help_text="The first of `running_job_ids`, or null."
    )
    last_heartbeat = serializers.DateTimeField(allow_null=True)
    successful_jobs = serializers.IntegerField()
    failed_jobs = serializers.IntegerField()
    stale = serializers.BooleanField(help_text="No heartbeat within the worker TTL.")
    figures = serializers.DictField(
        help_text="What the worker last measured of itself: rss_mb, cpu_percent, and of its "
        "host: load_1m, disk_free_gb, disk_free_percent (every CONVEYOR_FIGURES_SECONDS)."
    )


class ComponentOutput(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["healthy", "degraded", "error"])
    reason = serializers.CharField()
    figures = serializers.DictField(help_text="The numbers behind the verdict.")


class HealthCheckOutput(serializers.Serializer):
    checked_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=["healthy", "degraded", "error"])
    components = serializers.DictField(
        help_text="Component → [status, reason, figures], as checked then."
    )
    workers = serializers.DictField(help_text="Worker → the figures it last reported.")
    duration_ms = serializers.IntegerField(help_text="How long the check took.")


class HealthCheckPageOutput(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = HealthCheckOutput(many=True)


class HealthHistoryQuery(serializers.Serializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    status = serializers.ChoiceField(
        choices=["healthy", "degraded", "error"], required=False, default=""
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["Must be later than since."]})
        return attrs


class HealthOutput(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "degraded", "error"])
    components = ComponentOutput(many=True)
    checked_at = serializers.DateTimeField()


class QueueStateOutput(serializers.Serializer):
    name = serializers.CharField()
    paused = serializers.BooleanField()


class QueueEmptiedOutput(serializers.Serializer):
    name = serializers.CharField()
    canceled = serializers.IntegerField(help_text="Waiting jobs canceled, of every tenant.")


class QueueCleanedOutput(serializers.Serializer):
    name = serializers.CharField()
    removed = serializers.IntegerField(help_text="Finished and failed RQ records deleted.")


class LiveOutput(serializers.Serializer):
    status = serializers.CharField(help_text="Always `ok`.")


class ReadyComponentOutput(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.CharField(help_text="`healthy` or `error`.")


class ReadyOutput(serializers.Serializer):
    status = serializers.CharField(help_text="`ready` or `unavailable`.")
    components = ReadyComponentOutput(many=True)


QUEUE_EXAMPLE: dict[str, Any] = {
    "name": "email",
    "waiting": 12,
    "waiting_by_priority": {"critical": 0, "high": 2, "normal": 10, "low": 0},
    "started": 4,
    "scheduled": 1,
    "deferred": 0,
    "failed": 3,
    "finished": 250,
    "canceled": 0,
    "workers": 4,
    "paused": False,
    "oldest_waiting_seconds": 1.8,
    "throughput_per_minute": 42.6,
}


def _known_queue(name: str) -> str:
    if name not in settings.CONVEYOR_QUEUES:
        raise NotFound(
            f"There is no queue {name!r}; the queues are {', '.join(settings.CONVEYOR_QUEUES)}."
        )
    return name


# --- Queues ------------------------------------------------------------------------------------


class QueueListView(APIView):
    permission_classes = [IsSuperuser | HasTenantRole]
    access_area = "statistics"

    @extend_schema(
        parameters=[TENANT_PARAMETER],
        responses={200: QueueOutput(many=True), **errors(*TENANT_ERRORS, 503)},
        examples=[OpenApiExample("One queue", value=QUEUE_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request) -> Response:
        """Every queue's counts, workers, paused flag, oldest wait and throughput.

        A tenant's members see their own jobs' counts (from PostgreSQL); superusers see the
        live counts of every tenant (from Redis).
        """
        if request.user.is_superuser:
            return Response(QueueOutput(queue_stats(), many=True).data)
        stats = tenant_queue_stats(tenant_request(request).tenant)
        return Response(QueueOutput(stats, many=True).data)


class QueuePauseView(APIView):
    permission_classes = [IsSuperuser]

    @extend_schema(
        request=None,
        responses={200: QueueStateOutput, **errors(*OPERATOR_ERRORS)},
        examples=[
            OpenApiExample("Paused", value={"name": "email", "paused": True}, response_only=True)
        ],
    )
    def post(self, request: Request, name: str) -> Response:
        """Workers stop taking jobs from the queue; running ones finish; enqueueing still works."""
        pause_queue(_known_queue(name), by=request.user)
        return Response(QueueStateOutput({"name": name, "paused": True}).data)


class QueueResumeView(APIView):
    permission_classes = [IsSuperuser]

    @extend_schema(
        request=None,
        responses={200: QueueStateOutput, **errors(*OPERATOR_ERRORS)},
        examples=[
            OpenApiExample("Resumed", value={"name": "email", "paused": False}, response_only=True)
        ],
    )
    def post(self, request: Request, name: str) -> Response:
        """Workers take jobs from the queue again."""
        resume_queue(_known_queue(name), by=request.user)
        return Response(QueueStateOutput({"name": name, "paused": False}).data)


class QueueEmptyView(APIView):
    permission_classes = [IsSuperuser]

    @extend_schema(
        request=None,
        responses={200: QueueEmptiedOutput, **errors(*OPERATOR_ERRORS)},
        examples=[
            OpenApiExample("Emptied", value={"name": "email", "canceled": 12}, response_only=True)
        ],
    )
    def post(self, request: Request, name: str) -> Response:
        """Cancel every job waiting in the queue, of every tenant."""
        _known_queue(name)
        require_redis()
        canceled = empty_queue(name, by=request.user)
        return Response(QueueEmptiedOutput({"name": name, "canceled": canceled}).data)


class QueueCleanView(APIView):
    permission_classes = [IsSuperuser]

    @extend_schema_serializer(component_name="QueueCleanInput")
    class Input(serializers.Serializer):
        older_than = serializers.IntegerField(
            min_value=0,
            max_value=10 * 365 * 24 * 3600,
            default=24 * 3600,
            help_text="Seconds since the record ended (default one day).",
        )

    @extend_schema(
        request=Input,
        responses={200: QueueCleanedOutput, **errors(400, *OPERATOR_ERRORS)},
        examples=[
            OpenApiExample("A week", value={"older_than": 604800}, request_only=True),
            OpenApiExample("Cleaned", value={"name": "email", "removed": 310}, response_only=True),
        ],
    )
    def post(self, request: Request, name: str) -> Response:
        """Delete RQ's finished and failed records of the queue older than `older_than` seconds.

        Job rows in the database are kept: `cleanup_jobs` deletes those.
        """
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        removed = clean_queue(_known_queue(name), **data.validated_data)
        return Response(QueueCleanedOutput({"name": name, "removed": removed}).data)


# --- Workers and health ------------------------------------------------------------------------


class WorkerListView(APIView):
    permission_classes = [IsSuperuser | HasTenantRole]
    access_area = "statistics"

    @extend_schema(
        parameters=[TENANT_PARAMETER],
        responses={200: WorkerOutput(many=True), **errors(*TENANT_ERRORS, 503)},
        examples=[
            OpenApiExample(
                "One busy worker",
                value={
                    "name": "worker-email-1",
                    "hostname": "app-1",
                    "pid": 4242,
                    "queues": ["email"],
                    "state": "busy",
                    "concurrency": 10,
                    "busy_slots": 1,
                    "running_job_ids": ["6f1c2a4e-8d0b-4c55-9a3e-1f2b3c4d5e6f"],
                    "current_job_id": "6f1c2a4e-8d0b-4c55-9a3e-1f2b3c4d5e6f",
                    "last_heartbeat": "2026-11-22T16:30:00Z",
                    "successful_jobs": 1200,
                    "failed_jobs": 3,
                    "stale": False,
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        """Every worker: host, pid, queues, state, slots and their jobs, heartbeat, counts.

        A tenant's members see a current job only if it is theirs, and their own jobs' counts.
        """
        if request.user.is_superuser:
            return Response(WorkerOutput(list_workers(), many=True).data)
        workers = tenant_workers(tenant_request(request).tenant)
        return Response(WorkerOutput(workers, many=True).data)


class HealthView(APIView):
    permission_classes = [IsSuperuser | HasTenantRole]
    access_area = "statistics"

    @extend_schema(
        parameters=[TENANT_PARAMETER],
        responses={200: HealthOutput, **errors(*TENANT_ERRORS)},
        examples=[
            OpenApiExample(
                "Degraded",
                value={
                    "status": "degraded",
                    "components": [
                        {"name": "database", "status": "healthy", "reason": "PostgreSQL answers."},
                        {"name": "redis", "status": "healthy", "reason": "Redis answers."},
                        {
                            "name": "queue:email",
                            "status": "degraded",
                            "reason": "Oldest waiting job is 412 s old (threshold 300 s).",
                        },
                    ],
                    "checked_at": "2026-11-22T16:30:00Z",
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        """healthy, degraded or error, with the reason per component.

        A tenant's members see their own jobs' waits and failure rate; superusers everyone's.
        """
        tenant = None if request.user.is_superuser else tenant_request(request).tenant
        return Response(HealthOutput(health_report(tenant)).data)


class HealthHistoryView(APIView):
    permission_classes = [IsSuperuser | HasTenantRole]
    access_area = "statistics"

    @extend_schema(
        operation_id="health_history_list",
        parameters=[TENANT_PARAMETER, HealthHistoryQuery, OpenApiParameter("page", int)],
        responses={200: HealthCheckPageOutput, **errors(*TENANT_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        """The scheduled health checks kept (newest first, paginated): status, each
        component's status, reason and figures, each worker's figures."""
        query = HealthHistoryQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        checks = list_health_checks(**query.validated_data)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(checks, request, view=self)
        return paginator.get_paginated_response(HealthCheckOutput(page, many=True).data)


class HealthLiveView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(
        auth=[],
        responses={200: LiveOutput},
        examples=[OpenApiExample("Up", value={"status": "ok"}, response_only=True)],
    )
    def get(self, request: Request) -> Response:
        """200 while the process answers; for load balancers, without credentials."""
        return Response(LiveOutput({"status": "ok"}).data)


class HealthReadyView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(
        auth=[],
        responses={
            200: ReadyOutput,
            503: OpenApiResponse(ReadyOutput, description="PostgreSQL or Redis does not answer."),
        },
        examples=[
            OpenApiExample(
                "Redis down",
                value={
                    "status": "unavailable",
                    "components": [
                        {"name": "database", "status": "healthy"},
                        {"name": "redis", "status": "error"},
                    ],
                },
                response_only=True,
                status_codes=["503"],
            )
        ],
    )
    def get(self, request: Request) -> Response:
        """200 when PostgreSQL and Redis answer, else 503; for load balancers, no credentials."""
        report = readiness()
        code = (
            status.HTTP_200_OK
            if report["status"] == "ready"
            else status.HTTP_503_SERVICE_UNAVAILABLE
        )
        return Response(ReadyOutput(report).data, status=code)


urlpatterns: list[URLPattern] = [
    path("queues/", QueueListView.as_view(), name="queue-list"),
    path("queues/<str:name>/pause/", QueuePauseView.as_view(), name="queue-pause"),
    path("queues/<str:name>/resume/", QueueResumeView.as_view(), name="queue-resume"),
    path("queues/<str:name>/empty/", QueueEmptyView.as_view(), name="queue-empty"),
    path("queues/<str:name>/clean/", QueueCleanView.as_view(), name="queue-clean"),
    path("workers/", WorkerListView.as_view(), name="worker-list"),
    path("health/", HealthView.as_view(), name="health"),
    path("health/history/", HealthHistoryView.as_view(), name="health-history"),
    path("health/live", HealthLiveView.as_view(), name="health-live"),
    path("health/ready", HealthReadyView.as_view(), name="health-ready"),
]
