"""API: contact imports (upload → job → result, rejected rows as CSV) and exports (→ file)."""

from typing import Any, cast
from uuid import UUID

from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.http import FileResponse
from django.urls import URLPattern, URLResolver, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from communications.models import ContactExport, ContactImport, ContactImportRejection
from communications.models.imports import TransferStatus
from communications.selectors.imports import (
    get_export,
    get_import,
    import_rejections,
    list_exports,
    list_imports,
)
from communications.services.import_rows import ERRORS_SHOWN, check_mapping
from communications.services.imports import start_export, start_import, start_real_import
from config.exceptions import Conflict
from config.parsers import StrictJSONParser
from jobs.api.common import StatusField, StatusWords, errors, tenant_request
from jobs.models import Job
from tenants.permissions import HasTenantRole

CONTENT_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
    "pdf": "application/pdf",
}
IMPORT_ID = OpenApiParameter("import_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
EXPORT_ID = OpenApiParameter("export_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
FILE_RESPONSE = OpenApiResponse(OpenApiTypes.BINARY, description="The file, as an attachment.")


# --- Output -------------------------------------------------------------------------------------


class ImportJobOutput(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = ["id", "status", "progress", "progress_message", "error_message"]
        read_only_fields = fields


class CountsOutput(serializers.Serializer):
    new = serializers.IntegerField()
    updated = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Existing contacts (skip policy) or unchanged.")
    invalid = serializers.IntegerField(help_text="Rejected rows: see errors.")


class RejectionOutput(serializers.ModelSerializer):
    class Meta:
        model = ContactImportRejection
        fields = ["line", "errors", "values"]
        read_only_fields = fields


TRANSFER_WORDS = StatusWords(
    current=tuple(TransferStatus.values),
    old_for={"started": "running", "canceled": "failed"},
    new_for={"running": "started"},
)


class ImportOutput(serializers.ModelSerializer):
    status = StatusField(words=TRANSFER_WORDS, choices=TransferStatus.choices)
    error = serializers.CharField(help_text="Why the file failed.")
    job = ImportJobOutput(allow_null=True)
    counts = CountsOutput()
    created_by = serializers.CharField(source="created_by.username", allow_null=True)
    file_name = serializers.CharField(source="original_name")
    errors_url = serializers.SerializerMethodField(help_text="The rejected rows as CSV.")

    class Meta:
        model = ContactImport
        fields = [
            "id",
            "status",
            "file_name",
            "format",
            "policy",
            "dry_run",
            "checked_by",
            "mapping",
            "columns",
            "total_rows",
            "processed_rows",
            "counts",
            "error",
            "errors_url",
            "job",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_errors_url(self, contact_import: ContactImport) -> str | None:
        if not contact_import.error_file:
            return None
        return f"/api/v1/contacts/imports/{contact_import.pk}/errors/"


class ImportDetailOutput(ImportOutput):
    def get_fields(self) -> dict[str, serializers.Field]:
        # Declared here: a class attribute named `errors` would hide Serializer.errors.
        fields = super().get_fields()
        fields["errors"] = serializers.SerializerMethodField(
            method_name="get_rejections",
            help_text=f"The first {ERRORS_SHOWN} rejected rows: line number, reasons and values.",
        )
        return fields

    @extend_schema_field(RejectionOutput(many=True))
    def get_rejections(self, contact_import: ContactImport) -> list[dict[str, Any]]:
        rejections = import_rejections(contact_import)[:ERRORS_SHOWN]
        return list(RejectionOutput(rejections, many=True).data)


class ExportOutput(serializers.ModelSerializer):
    status = StatusField(words=TRANSFER_WORDS, choices=TransferStatus.choices)
    error = serializers.CharField()
    job = ImportJobOutput(allow_null=True)
    created_by = serializers.CharField(source="created_by.username", allow_null=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ContactExport
        fields = [
            "id",
            "status",
            "format",
            "filters",
            "row_count",
            "error",
            "download_url",
            "job",
            "created_by",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_download_url(self, export: ContactExport) -> str | None:
        if export.status != ContactExport.Status.SUCCEEDED:
            return None
        return f"/api/v1/contacts/exports/{export.pk}/download/"


# --- Input ------------------------------------------------------------------------------------


class ImportInput(serializers.Serializer):
    file = serializers.FileField(help_text="CSV, XLSX or JSON.")
    format = serializers.ChoiceField(
        choices=ContactImport.Format.choices,
        required=False,
        help_text="Default: from the file name's extension.",
    )
    mapping = serializers.JSONField(
        required=False,
        help_text='File column → contact field, e.g. {"Work mail": "email", "Notes": ""} '
        "(empty ignores the column). Unmapped columns are matched by name.",
    )
    policy = serializers.ChoiceField(
        choices=ContactImport.Policy.choices, default=ContactImport.Policy.SKIP
    )
    dry_run = serializers.BooleanField(
        default=False, help_text="Report what the import would do and change nothing."
    )

    def validate_mapping(self, value: Any) -> dict[str, str]:
        return check_mapping(value or {})


class ExportInput(serializers.Serializer):
    format = serializers.ChoiceField(choices=ContactExport.Format.choices)
    tag = serializers.CharField(max_length=50, required=False, help_text="Contacts with it.")
    opted_out = serializers.BooleanField(required=False, allow_null=True, default=None)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    search = serializers.CharField(
        max_length=200, required=False, help_text="In name, email, phone and company."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after and before and after >= before:
            raise serializers.ValidationError(
                {"created_before": ["Must be later than created_after."]}
            )
        return attrs


# --- Imports ------------------------------------------------------------------------------------


class ContactImportListView(generics.ListAPIView):
    """`contacts/imports/`: GET lists the tenant's imports, POST uploads a file (admin and up)."""

    permission_classes = [HasTenantRole]
    access_area = "contact_transfers"
    queryset = ContactImport.objects.none()
    serializer_class = ImportOutput
    parser_classes = [MultiPartParser, FormParser]
    filter_backends: list[Any] = []

    Input = ImportInput

    def get_queryset(self) -> Any:
        return list_imports(tenant=tenant_request(self.request).tenant)

    @extend_schema(
        request={"multipart/form-data": Input},
        responses={202: ImportOutput, **errors(400, 401, 403, 404, 429)},
    )
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        contact_import = start_import(
            tenant=tenant_request(request).tenant,
            by=cast(User, request.user),
            upload=fields["file"],
            format=fields.get("format", ""),
            mapping=fields.get("mapping") or {},
            policy=fields["policy"],
            dry_run=fields["dry_run"],
        )
        return Response(ImportOutput(contact_import).data, status=status.HTTP_202_ACCEPTED)


class ContactImportDetailView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "contact_transfers"

    @extend_schema(
        parameters=[IMPORT_ID], responses={200: ImportDetailOutput, **errors(400, 401, 403, 404)}
    )
    def get(self, request: Request, import_id: UUID) -> Response:
        contact_import = get_import(tenant=tenant_request(request).tenant, import_id=import_id)
        return Response(ImportDetailOutput(contact_import).data)


class ContactImportRunView(APIView):
    """`contacts/imports/{id}/run/`: import for real the file a succeeded dry run checked."""

    permission_classes = [HasTenantRole]
    access_area = "contact_transfers"

    @extend_schema(
        request=None,
        parameters=[IMPORT_ID],
        responses={202: ImportOutput, **errors(400, 401, 403, 404, 409, 429)},
        description=(
            "Starts a real import of the dry run's stored file with its format, mapping and "
            "policy. Once per dry run: asking again answers with the import already started. "
            "409 unless the import is a dry run that succeeded."
        ),
    )
    def post(self, request: Request, import_id: UUID) -> Response:
        dry_run = get_import(tenant=tenant_request(request).tenant, import_id=import_id)
        real = start_real_import(dry_run, by=cast(User, request.user))
        return Response(ImportOutput(real).data, status=status.HTTP_202_ACCEPTED)


class ContactImportErrorsView(APIView):
    """The rejected rows as CSV: their line, their values and an `errors` column."""

    permission_classes = [HasTenantRole]
    access_area = "contact_transfers"

    @extend_schema(
        parameters=[IMPORT_ID], responses={200: FILE_RESPONSE, **errors(400, 401, 403, 404)}
    )
    def get(self, request: Request, import_id: UUID) -> FileResponse:
        contact_import = get_import(tenant=tenant_request(request).tenant, import_id=import_id)
        if not contact_import.error_file:
            raise NotFound("This import has no rejected rows (or has not finished).")
        name = f"{contact_import.original_name.rsplit('.', 1)[0] or 'import'}-errors.csv"
        return _file(contact_import.error_file.name or "", name, "text/csv")


# --- Exports ------------------------------------------------------------------------------------


class ContactExportListView(generics.ListAPIView):
    """`contacts/exports/`: GET lists the tenant's exports, POST starts one (admin and up)."""

    permission_classes = [HasTenantRole]
    access_area = "contact_transfers"
    queryset = ContactExport.objects.none()
    serializer_class = ExportOutput
    parser_classes = [StrictJSONParser, FormParser, MultiPartParser]
    filter_backends: list[Any] = []

    Input = ExportInput

    def get_queryset(self) -> Any:
        return list_exports(tenant=tenant_request(self.request).tenant)

    @extend_schema(request=Input, responses={202: ExportOutput, **errors(400, 401, 403, 404, 429)})
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        filters = dict(data.validated_data)
        export = start_export(
            tenant=tenant_request(request).tenant,
            by=cast(User, request.user),
            format=filters.pop("format"),
            filters={key: value for key, value in filters.items() if value is not None},
        )
        return Response(ExportOutput(export).data, status=status.HTTP_202_ACCEPTED)


class ContactExportDetailView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "contact_transfers"

    @extend_schema(
        parameters=[EXPORT_ID], responses={200: ExportOutput, **errors(400, 401, 403, 404)}
    )
    def get(self, request: Request, export_id: UUID) -> Response:
        export = get_export(tenant=tenant_request(request).tenant, export_id=export_id)
        return Response(ExportOutput(export).data)


class ContactExportDownloadView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "contact_transfers"

    @extend_schema(
        parameters=[EXPORT_ID], responses={200: FILE_RESPONSE, **errors(400, 401, 403, 404, 409)}
    )
    def get(self, request: Request, export_id: UUID) -> FileResponse:
        export = get_export(tenant=tenant_request(request).tenant, export_id=export_id)
        if export.status != ContactExport.Status.SUCCEEDED or not export.file:
            raise Conflict(f"The export is not ready: it is {export.status}.")
        name = f"contacts-{export.created_at:%Y%m%d-%H%M%S}.{export.format}"
        return _file(export.file.name or "", name, CONTENT_TYPES[export.format])


def _file(stored_name: str, download_name: str, content_type: str) -> FileResponse:
    try:
        handle = default_storage.open(stored_name, "rb")
    except FileNotFoundError:
        raise NotFound("The file has been cleaned up.") from None
    return FileResponse(
        handle, as_attachment=True, filename=download_name, content_type=content_type
    )


urlpatterns: list[URLPattern | URLResolver] = [
    path("contacts/imports/", ContactImportListView.as_view(), name="contact-import-list"),
    path(
        "contacts/imports/<uuid:import_id>/",
        ContactImportDetailView.as_view(),
        name="contact-import-detail",
    ),
    path(
        "contacts/imports/<uuid:import_id>/run/",
        ContactImportRunView.as_view(),
        name="contact-import-run",
    ),
    path(
        "contacts/imports/<uuid:import_id>/errors/",
        ContactImportErrorsView.as_view(),
        name="contact-import-errors",
    ),
    path("contacts/exports/", ContactExportListView.as_view(), name="contact-export-list"),
    path(
        "contacts/exports/<uuid:export_id>/",
        ContactExportDetailView.as_view(),
        name="contact-export-detail",
    ),
    path(
        "contacts/exports/<uuid:export_id>/download/",
        ContactExportDownloadView.as_view(),
        name="contact-export-download",
    ),
]
