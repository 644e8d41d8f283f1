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
from jobs.selectors.stats import job_stats
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, TenantRequest


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


urlpatterns: list[URLPattern] = [
    path("jobs/stats/", JobStatsView.as_view(), name="job-stats"),
]
