"""Reads of contact imports and exports, and the contacts an export writes."""

from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from communications.models import Contact, ContactExport, ContactImport, ContactImportRejection
from tenants.models import Tenant


def list_imports(*, tenant: Tenant) -> QuerySet[ContactImport]:
    return (
        ContactImport.objects.for_tenant(tenant)
        .select_related("tenant", "created_by", "job")
        .order_by("-created_at")
    )


def get_import(*, tenant: Tenant, import_id: Any) -> ContactImport:
    """The tenant's import; another tenant's raises DoesNotExist like a missing one."""
    return list_imports(tenant=tenant).get(pk=import_id)


def import_rejections(contact_import: ContactImport) -> QuerySet[ContactImportRejection]:
    return (
        ContactImportRejection.objects.for_tenant(contact_import.tenant)
        .filter(contact_import=contact_import)
        .order_by("line")
    )


def list_exports(*, tenant: Tenant) -> QuerySet[ContactExport]:
    return (
        ContactExport.objects.for_tenant(tenant)
        .select_related("tenant", "created_by", "job")
        .order_by("-created_at")
    )


def get_export(*, tenant: Tenant, export_id: Any) -> ContactExport:
    return list_exports(tenant=tenant).get(pk=export_id)


def export_queryset(*, tenant: Tenant, filters: dict[str, Any]) -> QuerySet[Contact]:
    """The tenant's contacts an export holds: by tag, opted-out flag, creation time, search."""
    contacts = Contact.objects.for_tenant(tenant)
    if filters.get("tag"):
        contacts = contacts.filter(tags__contains=[filters["tag"]])
    if filters.get("opted_out") is not None:
        contacts = contacts.filter(opted_out=filters["opted_out"])
    if after := _moment(filters.get("created_after")):
        contacts = contacts.filter(created_at__gte=after)
    if before := _moment(filters.get("created_before")):
        contacts = contacts.filter(created_at__lt=before)
    if search := (filters.get("search") or "").strip():
        contacts = contacts.filter(
            Q(name__icontains=search)
            | Q(email__icontains=search)
            | Q(phone__icontains=search)
            | Q(company__icontains=search)
        )
    return contacts


def _moment(value: Any) -> datetime | None:
    if not value:
        return None
    return value if isinstance(value, datetime) else parse_datetime(str(value))
