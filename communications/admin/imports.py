"""Admin: contact imports and exports (read-only, with their files), and the import/export
buttons of the contacts list (`ContactImportExportMixin`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.db.models import FileField
from django.http import FileResponse, Http404, HttpRequest
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from import_export.admin import ImportExportMixin
from import_export.forms import ConfirmImportForm, ImportForm

from communications.models import ContactExport, ContactImport
from communications.resources import (
    EXPORT_FORMATS,
    IMPORT_FORMATS,
    ContactResource,
    UnreadableFile,
)
from communications.selectors.imports import import_rejections
from tenants import access
from tenants.admin import TenantScopedAdminMixin, tenant_ids_with
from tenants.models import Tenant

SHOWN = 20

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = admin.ModelAdmin


# --- The contacts list's import and export buttons ---------------------------------------------


def importable_tenants(request: HttpRequest) -> Any:
    """Tenants the user may import contacts into or export them from (superusers: all)."""
    if request.user.is_superuser:
        return Tenant.objects.filter(is_active=True)
    ids = tenant_ids_with(request, access.required_role("contact_transfers", write=True))
    return Tenant.objects.filter(pk__in=ids, is_active=True)


class ContactImportForm(ImportForm):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), help_text="Import into.")


class ContactConfirmImportForm(ConfirmImportForm):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), widget=forms.HiddenInput())


class ContactImportExportMixin(ImportExportMixin):
    """Import and export buttons for the contacts admin, with import-export's confirm step.

    Rows are matched by email or phone within the chosen tenant and cleaned as the import
    job cleans them; CSV and XLSX exports escape formula-like cells.
    """

    resource_classes = [ContactResource]
    import_formats = IMPORT_FORMATS
    export_formats = EXPORT_FORMATS
    import_form_class = ContactImportForm
    confirm_form_class = ContactConfirmImportForm

    def create_import_form(self, request: HttpRequest) -> Any:
        form = super().create_import_form(request)
        form.fields["tenant"].queryset = importable_tenants(request)
        return form

    def create_confirm_form(self, request: HttpRequest, import_form: Any = None) -> Any:
        form = super().create_confirm_form(request, import_form)
        form.fields["tenant"].queryset = importable_tenants(request)
        return form

    def get_confirm_form_initial(self, request: HttpRequest, import_form: Any) -> dict[str, Any]:
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["tenant"] = import_form.cleaned_data["tenant"].pk
        return initial

    def get_import_resource_kwargs(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        cleaned = getattr(kwargs.get("form"), "cleaned_data", {})
        return {"tenant": cleaned.get("tenant"), "user": request.user}

    def get_export_resource_kwargs(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        return {"tenant": None, "user": request.user}

    def add_data_read_fail_error_to_form(self, form: Any, e: Exception) -> None:
        if isinstance(e, UnreadableFile):
            form.add_error("import_file", str(e))
        else:
            super().add_data_read_fail_error_to_form(form, e)

    def has_import_permission(self, request: HttpRequest) -> bool:
        return importable_tenants(request).exists()

    def has_export_permission(self, request: HttpRequest) -> bool:
        return importable_tenants(request).exists()

    def get_export_queryset(self, request: HttpRequest) -> Any:
        """The listed contacts of the tenants where the user may export, never the others."""
        return super().get_export_queryset(request).filter(tenant__in=importable_tenants(request))


# --- Imports and exports ------------------------------------------------------------------------


class _FileDownloadsMixin(TenantScopedAdminMixin):
    """Read-only rows whose files are downloaded through the admin, checked per tenant."""

    access_area = "contact_transfers"

    file_fields: tuple[str, ...] = ()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @property
    def download_url_name(self) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_download"

    def get_urls(self) -> list[URLPattern]:
        download = self.admin_site.admin_view(self.download_view)
        return [
            path("<uuid:object_id>/download/<str:field>/", download, name=self.download_url_name),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, object_id: Any, field: str) -> FileResponse:
        obj = self.get_queryset(request).filter(pk=object_id).first()
        if obj is None or field not in self.file_fields:
            raise Http404("No such file.")
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
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
        url = reverse(f"admin:{self.download_url_name}", args=[obj.pk, field])
        return format_html('<a href="{}">{}</a>', url, label)


@admin.register(ContactImport)
class ContactImportAdmin(_FileDownloadsMixin):
    file_fields = ("file", "error_file")
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
    readonly_fields = (
        "tenant",
        "created_by",
        "job",
        "original_name",
        "format",
        "policy",
        "dry_run",
        "mapping",
        "columns",
        "state",
        "problem",
        "total_rows",
        "processed_rows",
        "new_count",
        "updated_count",
        "skipped_count",
        "invalid_count",
        "uploaded_file",
        "rejected_rows",
        "first_rejections",
        "created_at",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields

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
class ContactExportAdmin(_FileDownloadsMixin):
    file_fields = ("file",)
    list_display = ("created_at", "tenant", "format", "state", "row_count", "download")
    list_filter = ("tenant", "format", "status", "created_at")
    list_select_related = ("tenant", "job")
    ordering = ("-created_at",)
    readonly_fields = (
        "tenant",
        "created_by",
        "job",
        "format",
        "filters",
        "state",
        "problem",
        "row_count",
        "download",
        "created_at",
        "finished_at",
    )
    fields = readonly_fields

    @admin.display(description="File")
    def download(self, obj: ContactExport) -> str:
        return self.link(obj, "file", f"contacts.{obj.format}")
