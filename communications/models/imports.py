"""Contact imports and exports: each a tenant's request, the job that carries it out, its files.

Files live in Django's default storage under `imports/` (uploads and error files) and
`exports/`; the rows keep only their paths.
"""

import uuid

from django.conf import settings
from django.db import models

from tenants.models import Tenant, TenantQuerySet

__all__ = ["ContactExport", "ContactImport", "ContactImportRejection"]


class TransferStatus(models.TextChoices):
    """The engine's words, as the import's or export's job goes through them."""

    PENDING = "pending", "Pending"
    STARTED = "started", "Started"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class ContactImport(models.Model):
    """An uploaded file of contacts and what importing it did (or, for a dry run, would do)."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"
        JSON = "json", "JSON"

    class Policy(models.TextChoices):
        SKIP = "skip", "Skip existing contacts"
        UPDATE = "update", "Update existing contacts"

    Status = TransferStatus
    FINISHED = (TransferStatus.SUCCEEDED, TransferStatus.FAILED, TransferStatus.CANCELED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="contact_imports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    file = models.FileField(max_length=255, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    format = models.CharField(max_length=4, choices=Format.choices)
    mapping = models.JSONField(
        default=dict, blank=True, help_text="File column → contact field, as given."
    )
    columns = models.JSONField(
        default=dict, blank=True, help_text="File column → contact field, as used."
    )
    policy = models.CharField(max_length=6, choices=Policy.choices, default=Policy.SKIP)
    dry_run = models.BooleanField(default=False)
    checked_by = models.OneToOneField(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="run_for_real",
        help_text="The dry run whose file this import ran for real.",
    )
    status = models.CharField(
        max_length=10, choices=TransferStatus.choices, default=TransferStatus.PENDING
    )
    error = models.TextField(blank=True, help_text="Why the file could not be imported at all.")
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(
        default=0, help_text="Data rows done; a retried job resumes after them."
    )
    new_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    invalid_count = models.PositiveIntegerField(default=0)
    error_file = models.FileField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="contactimport_tenant_idx"),
        ]

    def __str__(self) -> str:
        return f"Import of {self.original_name or self.pk}"

    @property
    def can_run_for_real(self) -> bool:
        """A dry run that succeeded: its file can be imported for real."""
        return self.dry_run and self.status == TransferStatus.SUCCEEDED

    @property
    def counts(self) -> dict[str, int]:
        return {
            "new": self.new_count,
            "updated": self.updated_count,
            "skipped": self.skipped_count,
            "invalid": self.invalid_count,
        }


class ContactImportRejection(models.Model):
    """A row of an import that was not imported: its line, its values and the reasons."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    contact_import = models.ForeignKey(
        ContactImport, on_delete=models.CASCADE, related_name="rejections"
    )
    line = models.PositiveIntegerField()
    values = models.JSONField(default=dict)
    errors = models.JSONField(default=list)

    objects = TenantQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "contact_import", "line"], name="importrejection_idx"),
        ]

    def __str__(self) -> str:
        return f"line {self.line}: {'; '.join(self.errors)}"


class ContactExport(models.Model):
    """A file of a tenant's contacts, written by a job from the filters given."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"
        JSON = "json", "JSON"
        PDF = "pdf", "PDF"

    Status = TransferStatus
    FINISHED = (TransferStatus.SUCCEEDED, TransferStatus.FAILED, TransferStatus.CANCELED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="contact_exports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    format = models.CharField(max_length=4, choices=Format.choices)
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=10, choices=TransferStatus.choices, default=TransferStatus.PENDING
    )
    error = models.TextField(blank=True)
    row_count = models.PositiveIntegerField(default=0)
    file = models.FileField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="contactexport_tenant_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_format_display()} export of {self.created_at:%Y-%m-%d %H:%M}"
