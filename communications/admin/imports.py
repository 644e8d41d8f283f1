"""Admin: contact imports and exports as jobs.

The contacts list's Import and Export buttons lead to the add pages of *Contact imports* and
*Contact exports*, whose forms start the job through the same services as the API
(`start_import`, `start_export`) and lead to the row's page: its status and progress, refreshed
while the job runs, its counts and files; a dry run's page offers to import the file for real.
The rows themselves are read-only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.db.models import FileField
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from rest_framework import serializers

from communications.admin.transfer_forms import (
    ExportStartForm,
    ImportStartForm,
    TenantForm,
    error_messages,
    importable_tenants,
)
from communications.models import ContactExport, ContactImport
from communications.selectors.imports import import_rejections
from communications.services.imports import (
    NOT_FOR_REAL,
    start_export,
    start_import,
    start_real_import,
)
from config.exceptions import DomainError
from tenants.admin import TenantScopedAdminMixin

SHOWN = 20
REFRESH_SECONDS = 2
# Replaces the progress box while the job runs; reloads the page once it has ended, so the
# counts and download links appear.
REFRESH_SCRIPT = """<script>
(function () {
  var box = document.getElementById("transfer-progress");
  if (!box || box.dataset.running !== "1") return;
  var timer = setInterval(function () {
    fetch(box.dataset.url, {credentials: "same-origin"}).then(function (response) {
      if (response.headers.get("X-Transfer-Running") !== "1") {
        clearInterval(timer);
        window.location.reload();
      }
      return response.text();
    }).then(function (html) { box.innerHTML = html; });
  }, MILLISECONDS);
})();
</script>""".replace("MILLISECONDS", str(REFRESH_SECONDS * 1000))

# --- Imports and exports ---------------------------------------------------------------------


class _TransferAdmin(TenantScopedAdminMixin):
    """Read-only rows, added through a form that starts their job; their files are downloaded
    through the admin and their progress refreshes while the job runs, checked per tenant."""

    access_area = "contact_transfers"

    file_fields: tuple[str, ...] = ()
    start_form_class: type[TenantForm] = TenantForm
    start_title = ""
    change_list_template = "communications/admin/transfer_change_list.html"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        context = {"start_title": self.start_title, **(extra_context or {})}
        return super().changelist_view(request, context)

    def url_name(self, view: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{view}"

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<uuid:object_id>/download/<str:field>/",
                view(self.download_view),
                name=self.url_name("download"),
            ),
            path(
                "<uuid:object_id>/progress/",
                view(self.progress_view),
                name=self.url_name("progress"),
            ),
            *super().get_urls(),
        ]

    def get_visible(self, request: HttpRequest, object_id: Any) -> Any:
        obj = self.get_queryset(request).select_related("job").filter(pk=object_id).first()
        if obj is None or not self.has_view_permission(request, obj):
            raise Http404("No such row.")
        return obj

    # --- Starting -----------------------------------------------------------------------------

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        posted = request.method == "POST"
        form = self.start_form_class(
            request.POST if posted else None,
            request.FILES if posted else None,
            initial=self.start_initial(request),
            tenants=importable_tenants(request),
        )
        if posted and form.is_valid():
            try:
                obj = self.start(request, form)
            except serializers.ValidationError as error:
                _add_errors(form, error_messages(error))
            else:
                return self.started(request, obj)
        return self.render_form(request, title=self.start_title, form=form)

    def start_initial(self, request: HttpRequest) -> dict[str, Any]:
        return {}

    def start(self, request: HttpRequest, form: Any) -> Any:
        raise NotImplementedError

    def started(self, request: HttpRequest, obj: Any, message: str = "") -> HttpResponse:
        """Log the new row in the admin log and show its page."""
        message = message or f"Started job {obj.job_id}."
        self.log_addition(request, obj, message)
        self.message_user(request, f"{obj}: {message} This page shows its progress.")
        return self.redirect_to(obj)

    def redirect_to(self, obj: Any) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse(f"admin:{self.url_name('change')}", args=[obj.pk]))

    def render_form(
        self, request: HttpRequest, *, title: str, form: Any = None, **context: Any
    ) -> HttpResponse:
        return TemplateResponse(
            request,
            "communications/admin/transfer_form.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": title,
                "form": form,
                **context,
            },
        )

    # --- Following ----------------------------------------------------------------------------

    def progress_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        """The progress box alone, for the refresh while the job runs."""
        obj = self.get_visible(request, object_id)
        response = HttpResponse(_progress(obj))
        response["X-Transfer-Running"] = "0" if obj.status in obj.FINISHED else "1"
        response["Cache-Control"] = "no-store"
        return response

    @admin.display(description="Progress")
    def progress(self, obj: Any) -> SafeString:
        running = "0" if obj.status in obj.FINISHED else "1"
        return format_html(
            '<div id="transfer-progress" data-url="{}" data-running="{}">{}</div>{}',
            reverse(f"admin:{self.url_name('progress')}", args=[obj.pk]),
            running,
            _progress(obj),
            mark_safe(REFRESH_SCRIPT),
        )

    def download_view(self, request: HttpRequest, object_id: Any, field: str) -> FileResponse:
        obj = self.get_visible(request, object_id)
        if field not in self.file_fields:
            raise Http404("No such file.")
        stored: FileField = getattr(obj, field)
        if not stored or not default_storage.exists(stored.name):
            raise Http404("The file is gone (cleaned up).")
        name = stored.name.rsplit("/", 1)[-1]
        return FileResponse(
            default_storage.open(stored.name, "rb"), as_attachment=True, filename=name
        )

    @admin.display(description="Status")
    def state(self, obj: Any) -> str:
        return obj.status

    @admin.display(description="Error")
    def problem(self, obj: Any) -> str:
        return obj.error

    def link(self, obj: Any, field: str, label: str) -> str:
        if not getattr(obj, field):
            return "—"
        url = reverse(f"admin:{self.url_name('download')}", args=[obj.pk, field])
        return format_html('<a href="{}">{}</a>', url, label)


def _progress(obj: ContactImport | ContactExport) -> SafeString:
    job = obj.job
    percent = 100 if obj.status == obj.Status.SUCCEEDED else (job.progress if job else 0)
    message = job.progress_message if job else ""
    return format_html(
        '<progress max="100" value="{}"></progress> {} % · <strong>{}</strong>{}',
        percent,
        percent,
        obj.status,
        f" · {message}" if message else "",
    )


def _add_errors(form: forms.Form, errors: Any) -> None:
    if not isinstance(errors, dict):
        form.add_error(None, errors)
        return
    for field, found in errors.items():
        form.add_error(field if field in form.fields else None, found)


@admin.register(ContactImport)
class ContactImportAdmin(_TransferAdmin):
    file_fields = ("file", "error_file")
    start_form_class = ImportStartForm
    start_title = "Import contacts"
    list_display = (
        "created_at",
        "tenant",
        "original_name",
        "state",
        "dry_run",
        "policy",
        "new_count",
        "updated_count",
        "skipped_count",
        "invalid_count",
        "uploaded_file",
        "rejected_rows",
    )
    list_filter = ("tenant", "status", "dry_run", "policy", "created_at")
    list_select_related = ("tenant", "job")
    search_fields = ("original_name",)
    ordering = ("-created_at",)
    fieldsets = (
        (None, {"fields": ("progress", "outcome", "import_for_real", "problem")}),
        (
            "File",
            {
                "fields": (
                    "tenant",
                    "original_name",
                    "uploaded_file",
                    "format",
                    "policy",
                    "dry_run",
                    "mapping",
                    "columns",
                )
            },
        ),
        (
            "Rows",
            {
                "fields": (
                    "total_rows",
                    "processed_rows",
                    "new_count",
                    "updated_count",
                    "skipped_count",
                    "invalid_count",
                    "rejected_rows",
                    "first_rejections",
                )
            },
        ),
        ("History", {"fields": ("job", "created_by", "created_at", "started_at", "finished_at")}),
    )
    readonly_fields = flatten_fieldsets(fieldsets)

    def get_urls(self) -> list[URLPattern]:
        run = path(
            "<uuid:object_id>/run/",
            self.admin_site.admin_view(self.run_view),
            name=self.url_name("run"),
        )
        return [run, *super().get_urls()]

    def start(self, request: HttpRequest, form: Any) -> ContactImport:
        data = form.cleaned_data
        return start_import(
            tenant=data["tenant"],
            by=request.user,  # type: ignore[arg-type]
            upload=data["file"],
            format=data["format"],
            mapping=data["mapping"],
            policy=data["policy"],
            dry_run=data["dry_run"],
        )

    def run_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        """Import for real the file of a dry run: asks first, then starts the import."""
        dry_run = self.get_visible(request, object_id)
        if not self.can_edit_in(request, dry_run.tenant_id):
            raise PermissionDenied
        real = getattr(dry_run, "run_for_real", None)
        if real is not None:
            self.message_user(request, f"This file was imported for real already: {real}.")
            return self.redirect_to(real)
        if not dry_run.can_run_for_real:
            self.message_user(request, NOT_FOR_REAL, messages.ERROR)
            return self.redirect_to(dry_run)
        if request.method != "POST":
            title = f"Import {dry_run.original_name} for real"
            return self.render_form(request, title=title, dry_run=dry_run)
        try:
            contact_import = start_real_import(dry_run, by=request.user)  # type: ignore[arg-type]
        except DomainError as error:
            self.message_user(request, str(error), messages.ERROR)
            return self.redirect_to(dry_run)
        message = f"Started job {contact_import.job_id}, for real, after dry run {dry_run.pk}."
        return self.started(request, contact_import, message)

    @admin.display(description="Outcome")
    def outcome(self, obj: ContactImport) -> str:
        if obj.status != ContactImport.Status.SUCCEEDED:
            return "—"
        verbs = (
            ("would create", "would update", "would skip")
            if obj.dry_run
            else (
                "created",
                "updated",
                "skipped",
            )
        )
        counts = (obj.new_count, obj.updated_count, obj.skipped_count)
        done = ", ".join(f"{verb} {count:,}" for verb, count in zip(verbs, counts, strict=True))
        return f"{done.capitalize()}; {obj.invalid_count:,} rows rejected."

    @admin.display(description="Import for real")
    def import_for_real(self, obj: ContactImport) -> str:
        real = getattr(obj, "run_for_real", None)
        if real is not None:
            url = reverse(f"admin:{self.url_name('change')}", args=[real.pk])
            return format_html('Imported for real: <a href="{}">{}</a>', url, real.pk)
        if not obj.can_run_for_real:
            return "—"
        url = reverse(f"admin:{self.url_name('run')}", args=[obj.pk])
        return format_html('<a class="button" href="{}">Import this file for real…</a>', url)

    @admin.display(description="File")
    def uploaded_file(self, obj: ContactImport) -> str:
        return self.link(obj, "file", obj.original_name or "download")

    @admin.display(description=f"First {SHOWN} rejected rows")
    def first_rejections(self, obj: ContactImport) -> str:
        rejections = import_rejections(obj)[:SHOWN]
        if not rejections:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "", "<li>line {}: {}</li>", ((r.line, "; ".join(r.errors)) for r in rejections)
            ),
        )

    @admin.display(description="Rejected rows")
    def rejected_rows(self, obj: ContactImport) -> str:
        return self.link(obj, "error_file", f"{obj.invalid_count} rows (CSV)")


@admin.register(ContactExport)
class ContactExportAdmin(_TransferAdmin):
    file_fields = ("file",)
    start_form_class = ExportStartForm
    start_title = "Export contacts"
    list_display = ("created_at", "tenant", "format", "state", "row_count", "download")
    list_filter = ("tenant", "format", "status", "created_at")
    list_select_related = ("tenant", "job")
    ordering = ("-created_at",)
    fieldsets = (
        (None, {"fields": ("progress", "download", "problem")}),
        ("Contacts", {"fields": ("tenant", "format", "filters", "row_count")}),
        ("History", {"fields": ("job", "created_by", "created_at", "finished_at")}),
    )
    readonly_fields = flatten_fieldsets(fieldsets)

    def start_initial(self, request: HttpRequest) -> dict[str, Any]:
        """The contacts list's filters, when the Export button carries them."""
        opted_out = {"1": True, "0": False}.get(request.GET.get("opted_out__exact", ""))
        found = {
            "tenant": request.GET.get("tenant__id__exact"),
            "tag": request.GET.get("tag"),
            "search": request.GET.get("q"),
            "opted_out": opted_out,
        }
        return {name: value for name, value in found.items() if value not in (None, "")}

    def start(self, request: HttpRequest, form: Any) -> ContactExport:
        return start_export(
            tenant=form.cleaned_data["tenant"],
            by=request.user,  # type: ignore[arg-type]
            format=form.cleaned_data["format"],
            filters=form.filters,
        )

    @admin.display(description="File")
    def download(self, obj: ContactExport) -> str:
        if obj.status != ContactExport.Status.SUCCEEDED:
            return "—"
        return self.link(obj, "file", f"contacts.{obj.format}")
