"""Admin: the forms that start a contact import or export, and the tenants they offer."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from rest_framework import serializers

from communications.models import ContactExport, ContactImport
from communications.services.import_files import ImportFileError, detect_format, read_table
from communications.services.import_rows import (
    CUSTOM_PREFIX,
    FIELDS,
    ImportRefused,
    check_mapping,
    match_columns,
)
from tenants import access
from tenants.admin import tenant_ids_with
from tenants.models import Tenant


def importable_tenants(request: HttpRequest) -> QuerySet[Tenant]:
    """Tenants the user may import contacts into or export them from (superusers: all)."""
    if request.user.is_superuser:
        return Tenant.objects.filter(is_active=True)
    ids = tenant_ids_with(request, access.required_role("contact_transfers", write=True))
    return Tenant.objects.filter(pk__in=ids, is_active=True)


def error_messages(error: serializers.ValidationError) -> Any:
    """A DRF error's messages, as a form's add_error takes them (per field when it has them)."""
    detail = error.detail
    if isinstance(detail, dict):
        return {field: [str(m) for m in found] for field, found in detail.items()}
    return [str(message) for message in detail] if isinstance(detail, list) else [str(detail)]


# --- The forms that start an import or an export ----------------------------------------------


class TenantForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none())

    def __init__(self, *args: Any, tenants: QuerySet[Tenant], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["tenant"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = tenants
        if len(choices := list(tenants[:2])) == 1:
            field.initial = choices[0].pk


class ImportStartForm(TenantForm):
    """What the API's import takes; the file and the mapping are checked before the job starts."""

    file = forms.FileField(help_text="CSV, XLSX or JSON.")
    format = forms.ChoiceField(
        choices=[("", "From the file name's extension"), *ContactImport.Format.choices],
        required=False,
    )
    mapping = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=format_html(
            'Optional: file column → contact field, e.g. {{"Work mail": "email", "Notes": ""}} '
            "(empty ignores the column). Fields: {}, or {}&lt;key&gt;. Columns left out are "
            "matched by their name.",
            ", ".join(FIELDS),
            CUSTOM_PREFIX,
        ),
    )
    policy = forms.ChoiceField(
        choices=ContactImport.Policy.choices,
        initial=ContactImport.Policy.SKIP,
        help_text="What to do with a row whose email or phone is already a contact.",
    )
    dry_run = forms.BooleanField(
        required=False, help_text="Report what the import would do and change nothing."
    )

    def clean_mapping(self) -> dict[str, str]:
        try:
            return check_mapping(self.cleaned_data["mapping"] or {})
        except serializers.ValidationError as error:
            raise forms.ValidationError(error_messages(error)) from error

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is None or "format" in self.errors:
            return data
        given = data.get("format", "")
        try:
            data["format"] = detect_format(upload.name or "", given=given)
        except ImportFileError as error:
            self.add_error("format" if given else "file", str(error))
            return data
        try:
            headers = self._headers(upload, data["format"])
        except ImportFileError as error:
            self.add_error("file", str(error))
            return data
        if "mapping" in data:
            try:
                match_columns(headers, data["mapping"])
            except ImportRefused as error:
                self.add_error("mapping", str(error))
        return data

    def _headers(self, upload: Any, format: str) -> list[str]:
        """The file's columns, read with the job's own checks (size, encoding, safety)."""
        if upload.size > settings.CONTACT_IMPORT_MAX_BYTES:
            raise ImportFileError(
                f"The file is {upload.size:,} bytes; "
                f"the limit is {settings.CONTACT_IMPORT_MAX_BYTES:,} bytes."
            )
        upload.seek(0)
        table = read_table(upload.read(), format=format)
        upload.seek(0)
        return table.headers


class ExportStartForm(TenantForm):
    """What the API's export takes: a format and the filters on the contacts."""

    FILTERS = ("tag", "opted_out", "created_after", "created_before", "search")

    format = forms.ChoiceField(choices=ContactExport.Format.choices)
    tag = forms.CharField(max_length=50, required=False, help_text="Contacts with this tag.")
    opted_out = forms.NullBooleanField(
        required=False, widget=forms.NullBooleanSelect, help_text="Unknown: both."
    )
    created_after = forms.DateTimeField(required=False, help_text="e.g. 2026-01-31 08:00")
    created_before = forms.DateTimeField(required=False)
    search = forms.CharField(
        max_length=200, required=False, help_text="In name, email, phone and company."
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        after, before = data.get("created_after"), data.get("created_before")
        if after and before and after >= before:
            self.add_error("created_before", "Must be later than created after.")
        return data

    @property
    def filters(self) -> dict[str, Any]:
        return {
            name: self.cleaned_data[name]
            for name in self.FILTERS
            if self.cleaned_data.get(name) not in (None, "")
        }
