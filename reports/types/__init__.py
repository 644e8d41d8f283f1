"""Report types: each module builds a `ReportData` from a tenant's data for a period."""

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from reports.models import ReportType
from reports.types.base import BuildContext, ReportData


@dataclass(frozen=True)
class TypeInfo:
    title: str
    filters: tuple[str, ...]
    build: Callable[[BuildContext], ReportData]


MODULES = {
    ReportType.JOB_ACTIVITY: "reports.types.job_activity",
    ReportType.MESSAGING_DELIVERY: "reports.types.messaging_delivery",
    ReportType.CONTACT_GROWTH: "reports.types.contact_growth",
    ReportType.WEBHOOK_DELIVERY: "reports.types.webhook_delivery",
}


def get_type(name: str) -> TypeInfo | None:
    """The report type `name`, or None for a name that is not a report type."""
    if name not in MODULES:
        return None
    module = import_module(MODULES[ReportType(name)])
    return TypeInfo(title=module.TITLE, filters=module.FILTERS, build=module.build)
