"""The batches admin: each batch with its progress, its counts and its members; cancel."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from jobs.models import Batch, Job
from jobs.selectors.batches import batch_counts, batch_progress
from jobs.services.jobs import cancel_batch
from tenants.admin import TenantScopedAdminMixin

SHOWN_MEMBERS = 200


@admin.register(Batch)
class BatchAdmin(TenantScopedAdminMixin):
    """Read-only: batches are made by code and the API; agents and up may cancel one."""

    access_area = "jobs"
    list_display = ("__str__", "tenant", "total", "progress", "created_at", "finished_at")
    list_filter = ("tenant",)
    list_select_related = ("tenant",)
    search_fields = ("id", "description", "callback_kind")
    ordering = ("-created_at",)
    actions = ["cancel"]
    fields = (
        "id",
        "tenant",
        "description",
        "progress",
        "counts",
        "callback_kind",
        "callback_payload",
        "callback_job",
        "created_at",
        "finished_at",
        "members",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(self.editable_tenant_ids(request))

    @admin.display(description="progress")
    def progress(self, batch: Batch) -> SafeString:
        percent = batch_progress(batch_counts(batch))
        return format_html('<progress max="100" value="{}">{} %</progress> {} %', *[percent] * 3)

    @admin.display(description="members by status")
    def counts(self, batch: Batch) -> str:
        found = batch_counts(batch)
        return ", ".join(f"{n} {status}" for status, n in found.items() if n) or "none"

    @admin.display(description=f"members (first {SHOWN_MEMBERS})")
    def members(self, batch: Batch) -> SafeString:
        jobs = Job.objects.filter(batch=batch, tenant_id=batch.tenant_id).order_by("created_at")
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:jobs_job_change", args=[job.pk]),
                    job.pk,
                    job.kind,
                    job.status,
                    job.attempt,
                )
                for job in jobs[:SHOWN_MEMBERS]
            ),
        )
        every = reverse("admin:jobs_job_changelist") + f"?batch__id__exact={batch.pk}"
        return format_html(
            "<table><tr><th>job</th><th>kind</th><th>status</th><th>attempt</th></tr>{}</table>"
            '<p><a href="{}">All members in the jobs list</a></p>',
            rows,
            every,
        )

    @admin.action(description="Cancel the members that have not ended", permissions=["cancel"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        totals = {"canceled": 0, "cancel_requested": 0, "skipped": 0}
        for batch in self.editable_queryset(request, queryset):
            for name, n in cancel_batch(batch, by=request.user).items():
                totals[name] += n
        self.message_user(
            request,
            f"{totals['canceled']} canceled, {totals['cancel_requested']} asked to stop, "
            f"{totals['skipped']} already ended.",
            messages.SUCCESS,
        )
