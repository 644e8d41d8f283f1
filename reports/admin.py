"""Admin: reports — list, an add form that asks for one, download links, regenerate."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from config.exceptions import DomainError
from reports.api import report_file_response
from reports.models import Report, ReportFormat, ReportType
from reports.parameters import FILTER_FIELDS, ReportRequest, stored_parameters
from reports.services import create_report, delete_report, regenerate_report
from tenants.admin import TenantScopedAdminMixin


class ReportForm(forms.ModelForm):
    """Asks for a report: the fields of the API's request, checked by the same serializer."""

    start = forms.DateField(help_text="First day, YYYY-MM-DD.")
    end = forms.DateField(help_text="Last day (included).")
    time_zone = forms.CharField(required=False, help_text="Blank: the tenant's time zone.")
    queue = forms.CharField(required=False, help_text="Job activity only.")
    kind = forms.CharField(required=False, help_text="Job activity only.")
    channel = forms.CharField(required=False, help_text="Messaging delivery only.")
    campaign = forms.CharField(required=False, help_text="Messaging delivery only: campaign id.")
    endpoint = forms.CharField(required=False, help_text="Webhook delivery only: endpoint id.")

    class Meta:
        model = Report
        fields = ["tenant", "type", "format"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        tenant = cleaned.get("tenant")
        if tenant is None or self.errors:
            return cleaned
        data = {key: value for key, value in cleaned.items() if value not in (None, "")}
        data.pop("tenant")
        checked = ReportRequest(data=data, context={"tenant": tenant})
        if not checked.is_valid():
            for field, problems in checked.errors.items():
                target = field if field in self.fields else None
                for problem in problems:
                    self.add_error(target, str(problem))
            return cleaned
        cleaned["parameters"] = stored_parameters(checked.validated_data)
        return cleaned


@admin.register(Report)
class ReportAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    access_area = "reports"
    list_display = ["__str__", "tenant", "status", "period", "size", "created_by", "download"]
    list_filter = ["status", "type", "format", "tenant"]
    list_select_related = ["tenant", "created_by"]
    date_hierarchy = "created_at"
    actions = ["regenerate_selected"]
    readonly_fields = [
        "tenant",
        "type",
        "format",
        "parameters",
        "status",
        "download",
        "size",
        "job_link",
        "created_by",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    ]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = ReportForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["tenant", "type", "format", "start", "end", "time_zone", *FILTER_FIELDS]
        return list(self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(self.readonly_fields) if obj is not None else []

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"type": ReportType.JOB_ACTIVITY, "format": ReportFormat.PDF}

    def save_model(self, request: HttpRequest, obj: Report, form: Any, change: bool) -> None:
        if change:
            return  # reports do not change by hand; regenerate instead
        self.check_tenant(request, obj)
        report = create_report(
            tenant=obj.tenant,
            by=request.user,
            type=obj.type,
            format=obj.format,
            parameters=form.cleaned_data["parameters"],
        )
        obj.pk, obj._state.adding, obj.job = report.pk, False, report.job
        obj.created_at = report.created_at

    def delete_model(self, request: HttpRequest, obj: Report) -> None:
        delete_report(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        for report in queryset:
            delete_report(report)

    @admin.display(description="Period")
    def period(self, report: Report) -> str:
        return f"{report.parameters.get('start', '?')} to {report.parameters.get('end', '?')}"

    @admin.display(description="File")
    def download(self, report: Report) -> str:
        if report.status != Report.Status.SUCCEEDED or not report.file:
            return "—"
        url = reverse("admin:reports_report_download", args=[report.pk])
        return format_html('<a href="{}">Download {}</a>', url, report.format.upper())

    @admin.display(description="Job")
    def job_link(self, report: Report) -> str:
        if report.job_id is None:
            return "—"
        url = reverse("admin:jobs_job_change", args=[report.job_id])
        return format_html('<a href="{}">{}</a>', url, report.job_id)

    @admin.action(description="Regenerate selected reports", permissions=["change"])
    def regenerate_selected(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        chosen = self.editable_queryset(request, queryset)
        done = 0
        for report in chosen.filter(status__in=Report.FINISHED):
            try:
                regenerate_report(report, by=request.user)
            except DomainError:
                continue
            done += 1
        skipped = queryset.count() - done
        self.message_user(request, f"Regenerating {done} report(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} report(s) skipped: being generated, or not yours to change."
            )

    def get_urls(self) -> list[URLPattern]:
        download = path(
            "<path:object_id>/download/",
            self.admin_site.admin_view(self.download_view),
            name="reports_report_download",
        )
        return [download, *super().get_urls()]

    def download_view(self, request: HttpRequest, object_id: str) -> FileResponse:
        report = self.get_object(request, object_id)
        if report is None or report.status != Report.Status.SUCCEEDED or not report.file:
            raise Http404("No such report file.")
        if not self.has_view_permission(request, report):
            raise PermissionDenied
        return report_file_response(report)
