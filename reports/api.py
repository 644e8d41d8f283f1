"""API views: reports — create (202), list, detail, download."""

from typing import Any, cast

from django.db.models import QuerySet
from django.http import FileResponse
from django.urls import URLPattern, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.common import TENANT_ERRORS, StatusField, StatusWords, errors
from reports.models import Report, ReportFormat, ReportType
from reports.parameters import ReportRequest, stored_parameters
from reports.selectors import get_report, list_reports
from reports.services import create_report, download_link
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, TenantRequest

REPORT_WORDS = StatusWords(
    current=tuple(Report.Status.values),
    old_for={"started": "running", "succeeded": "ready", "canceled": "failed"},
    new_for={"running": "started", "ready": "succeeded"},
)


class ReportOutput(serializers.ModelSerializer):
    status = StatusField(words=REPORT_WORDS, choices=Report.Status.choices)
    created_by = serializers.CharField(source="created_by.username", default=None)
    progress = serializers.SerializerMethodField(help_text="Percent done while generating.")
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = [
            "id",
            "type",
            "format",
            "parameters",
            "status",
            "progress",
            "error",
            "size",
            "download_url",
            "job",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_progress(self, report: Report) -> int:
        if report.status == Report.Status.SUCCEEDED:
            return 100
        return report.job.progress if report.job else 0

    def get_download_url(self, report: Report) -> str | None:
        if report.status != Report.Status.SUCCEEDED:
            return None
        request = self.context.get("request")
        link = download_link(report)
        return request.build_absolute_uri(link) if request else link


REPORT_EXAMPLE = {
    "id": "0b7f8f0e-2f4c-4a8e-9a57-3d2c1b0a9f8e",
    "type": "job_activity",
    "format": "pdf",
    "parameters": {"start": "2026-11-01", "end": "2026-11-30", "time_zone": "Europe/Paris"},
    "status": "succeeded",
    "progress": 100,
    "error": "",
    "size": 48213,
    "download_url": "https://conveyor.example.com/api/v1/reports/0b7f8f0e-2f4c-4a8e-9a57-3d2c1b0a9f8e/download/",
    "job": "6f1c2a4e-8d0b-4c55-9a3e-1f2b3c4d5e6f",
    "created_by": "adam",
    "created_at": "2026-12-01T08:00:00Z",
    "started_at": "2026-12-01T08:00:01Z",
    "finished_at": "2026-12-01T08:00:03Z",
}


def _tenant_request(request: Request) -> TenantRequest:
    return cast(TenantRequest, request)


class ReportListView(generics.ListAPIView):
    """`reports/`: GET lists the tenant's reports (any member), POST asks for one (admin and up)."""

    permission_classes = [HasTenantRole]
    serializer_class = ReportOutput
    queryset = Report.objects.none()
    filter_backends: list[Any] = []

    access_area = "reports"

    class Query(serializers.Serializer):
        """The filters; an empty one filters nothing, an unknown word is a 400."""

        status = StatusField(
            words=REPORT_WORDS, choices=Report.Status.choices, allow_blank=True, required=False
        )
        type = serializers.ChoiceField(choices=ReportType.choices, allow_blank=True, required=False)
        # `format` itself is DRF's output-format parameter, hence `file_format`.
        file_format = serializers.ChoiceField(
            choices=ReportFormat.choices, allow_blank=True, required=False, source="format"
        )

    def get_queryset(self) -> QuerySet[Report]:
        query = self.Query(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        filters = {field: value for field, value in query.validated_data.items() if value}
        reports = list_reports(tenant=_tenant_request(self.request).tenant).select_related("job")
        return reports.filter(**filters)

    @extend_schema(
        operation_id="reports_list",
        parameters=[
            TENANT_PARAMETER,
            OpenApiParameter("status", enum=Report.Status.values, required=False),
            OpenApiParameter("type", enum=ReportType.values, required=False),
            OpenApiParameter("file_format", enum=ReportFormat.values, required=False),
        ],
        responses={200: ReportOutput(many=True), **errors(*TENANT_ERRORS)},
        examples=[OpenApiExample("A page of reports", value=REPORT_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The tenant's reports, newest first (filter by `status`, `type`, `file_format`)."""
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="reports_create",
        parameters=[TENANT_PARAMETER],
        request=ReportRequest,
        responses={
            202: OpenApiResponse(ReportOutput, description="Recorded; generated by a job."),
            **errors(*TENANT_ERRORS),
        },
        examples=[
            OpenApiExample(
                "Last month's job activity as PDF",
                value={
                    "type": "job_activity",
                    "format": "pdf",
                    "start": "2026-11-01",
                    "end": "2026-11-30",
                    "queue": "email",
                },
                request_only=True,
            ),
            OpenApiExample(
                "Accepted", value={**REPORT_EXAMPLE, "status": "pending"}, response_only=True
            ),
        ],
    )
    def post(self, request: TenantRequest) -> Response:
        """Ask for a report; poll its detail until `ready`, then download it."""
        data = ReportRequest(data=request.data, context={"tenant": request.tenant})
        data.is_valid(raise_exception=True)
        report = create_report(
            tenant=request.tenant,
            by=request.user,
            type=data.validated_data["type"],
            format=data.validated_data["format"],
            parameters=stored_parameters(data.validated_data),
        )
        output = ReportOutput(report, context={"request": request})
        return Response(output.data, status=status.HTTP_202_ACCEPTED)


class ReportDetailView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "reports"

    @extend_schema(
        parameters=[TENANT_PARAMETER],
        responses={200: ReportOutput, **errors(*TENANT_ERRORS)},
        examples=[OpenApiExample("Ready", value=REPORT_EXAMPLE, response_only=True)],
    )
    def get(self, request: TenantRequest, report_id: str) -> Response:
        """One report with its status, progress and download link."""
        report = get_report(tenant=request.tenant, pk=report_id)
        return Response(ReportOutput(report, context={"request": request}).data)


def report_file_response(report: Report) -> FileResponse:
    """The report's file: HTML shown in the browser, every other format downloaded."""
    inline = report.format == "html"
    response = FileResponse(
        report.file.open("rb"), as_attachment=not inline, filename=report.filename
    )
    if inline:
        response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


class ReportDownloadView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "reports"

    @extend_schema(
        parameters=[TENANT_PARAMETER],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The file (HTML is shown inline)."
            ),
            **errors(*TENANT_ERRORS),
        },
    )
    def get(self, request: TenantRequest, report_id: str) -> FileResponse:
        """The report's file, once it is ready; 404 before, and for other tenants' reports."""
        report = get_report(tenant=request.tenant, pk=report_id)
        if report.status != Report.Status.SUCCEEDED or not report.file:
            raise NotFound("This report has no file yet.")
        return report_file_response(report)


urlpatterns: list[URLPattern] = [
    path("reports/", ReportListView.as_view(), name="report-list"),
    path("reports/<str:report_id>/", ReportDetailView.as_view(), name="report-detail"),
    path("reports/<str:report_id>/download/", ReportDownloadView.as_view(), name="report-download"),
]
