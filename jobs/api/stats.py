"""API view: the tenant's job statistics over a window."""

import re
from datetime import timedelta

from django.conf import settings
from django.urls import URLPattern, path
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.common import TENANT_ERRORS, errors
from jobs.models import Job
from jobs.selectors.queues import tenant_backlog
from jobs.selectors.stats import job_stats
from tenants.api import TENANT_PARAMETER
from tenants.models import Role
from tenants.permissions import HasTenantRole, IsSuperuser, TenantRequest


class PercentilesOutput(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)


class KindStatsOutput(serializers.Serializer):
    kind = serializers.CharField()
    total = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    failure_rate = serializers.FloatField()


class StatsOutput(serializers.Serializer):
    window_seconds = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Jobs by status.")
    throughput_per_minute = serializers.FloatField(help_text="Succeeded jobs per minute.")
    wait_seconds = PercentilesOutput(help_text="From enqueued to started.")
    run_seconds = PercentilesOutput(help_text="From started to finished.")
    failure_rate = serializers.FloatField(help_text="Failed / (succeeded + failed).")
    by_kind = KindStatsOutput(many=True)


WINDOW = re.compile(r"^(\d{1,5})([mhd])$")
WINDOW_UNITS = {"m": 60, "h": 3600, "d": 86400}
MAX_WINDOW = timedelta(days=90)


class JobStatsView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "statistics"

    class Query(serializers.Serializer):
        window = serializers.RegexField(
            WINDOW,
            default="24h",
            help_text="How far back: minutes, hours or days, e.g. 15m, 1h, 24h, 7d (at most 90d).",
            error_messages={"invalid": "Write the window as a number and m, h or d: 1h, 24h, 7d."},
        )
        queue = serializers.ChoiceField(choices=list(settings.CONVEYOR_QUEUES), required=False)
        kind = serializers.CharField(max_length=100, required=False)

        def validate_window(self, text: str) -> timedelta:
            match = WINDOW.match(text)
            assert match is not None  # RegexField checked it
            window = timedelta(seconds=int(match[1]) * WINDOW_UNITS[match[2]])
            if not timedelta(minutes=1) <= window <= MAX_WINDOW:
                raise ValidationError("The window must be between 1m and 90d.")
            return window

    @extend_schema(
        parameters=[TENANT_PARAMETER, Query],
        responses={200: StatsOutput, **errors(*TENANT_ERRORS)},
        examples=[
            OpenApiExample(
                "The last hour",
                value={
                    "window_seconds": 3600,
                    "counts": {
                        **dict.fromkeys(Job.Status.values, 0),
                        "succeeded": 118,
                        "failed": 2,
                    },
                    "throughput_per_minute": 1.967,
                    "wait_seconds": {"p50": 0.041, "p95": 0.35},
                    "run_seconds": {"p50": 1.2, "p95": 4.8},
                    "failure_rate": 0.0167,
                    "by_kind": [
                        {
                            "kind": "jobs.sleep",
                            "total": 120,
                            "succeeded": 118,
                            "failed": 2,
                            "failure_rate": 0.0167,
                        }
                    ],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: TenantRequest) -> Response:
        """Counts by status, throughput, wait and run time p50/p95 and failure rate."""
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        stats = job_stats(tenant=request.tenant, **query.validated_data)
        return Response(StatsOutput(stats).data)


class TenantBacklogOutput(serializers.Serializer):
    tenant = serializers.CharField(help_text='Slug; "other" sums the tenants past the top ones.')
    queue = serializers.CharField()
    waiting = serializers.IntegerField(help_text="Pending or queued jobs.")
    running = serializers.IntegerField()
    wait_p95_seconds = serializers.FloatField(
        allow_null=True, help_text="Of jobs enqueued in the last 15 minutes that started."
    )


class TenantBacklogView(APIView):
    permission_classes = [IsSuperuser | HasTenantRole]
    required_role = Role.ADMIN

    class Query(serializers.Serializer):
        top = serializers.IntegerField(
            min_value=1, max_value=100, default=10, help_text="Operators: tenants listed."
        )

    @extend_schema(
        parameters=[TENANT_PARAMETER, Query],
        responses={200: TenantBacklogOutput(many=True), **errors(400, *TENANT_ERRORS)},
        examples=[
            OpenApiExample(
                "One tenant's email backlog",
                value=[
                    {
                        "tenant": "acme",
                        "queue": "email",
                        "waiting": 1200,
                        "running": 10,
                        "wait_p95_seconds": 0.8,
                    }
                ],
                response_only=True,
            )
        ],
    )
    def get(self, request: TenantRequest) -> Response:
        """Waiting and running jobs and the wait p95, per queue: a tenant's admins see their
        tenant only; a superuser sees the top tenants by backlog and the rest as "other"."""
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        tenant_ids = None if request.user.is_superuser else [request.tenant.pk]
        rows = tenant_backlog(tenant_ids=tenant_ids, top=query.validated_data["top"])
        return Response(TenantBacklogOutput(rows, many=True).data)


urlpatterns: list[URLPattern] = [
    path("jobs/stats/", JobStatsView.as_view(), name="job-stats"),
    path("jobs/stats/tenants/", TenantBacklogView.as_view(), name="tenant-backlog"),
]
