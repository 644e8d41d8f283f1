"""Reads: a tenant's reports."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from reports.models import Report
from tenants.models import Tenant


def list_reports(*, tenant: Tenant | None) -> QuerySet[Report]:
    """Reports of `tenant`, newest first; None means every tenant (operators only)."""
    reports = Report.objects.all() if tenant is None else Report.objects.for_tenant(tenant)
    return reports.select_related("tenant", "created_by").order_by("-created_at")


def get_report(*, tenant: Tenant, pk: Any) -> Report:
    """The tenant's report; another tenant's id raises DoesNotExist like a missing one."""
    try:
        return list_reports(tenant=tenant).get(pk=pk)
    except (ValueError, TypeError, ValidationError, Report.DoesNotExist):
        raise Report.DoesNotExist(f"No report {pk}.") from None
