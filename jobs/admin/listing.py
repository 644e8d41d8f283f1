"""Admin listing helpers: counting without scanning, date navigation, and choice filters."""

from __future__ import annotations

import calendar
from functools import cached_property
from typing import Any, cast
from uuid import UUID

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Max, Min, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from jobs.kinds import all_kinds
from jobs.models import Job
from jobs.selectors.jobs import of_workflow
from tenants.admin import ScopedChangeList, tenant_roles
from tenants.models import Tenant

# --- Counting without scanning ----------------------------------------------------------------


class EstimatedCountPaginator(Paginator):
    """Counts that stay cheap on millions of rows.

    Unfiltered: the planner's estimate from pg_class. Filtered: counted up to CAP rows only.
    `summary` says which ("about 1,000,000 jobs", "over 10,000 jobs", "42 jobs").
    """

    CAP = 10_000
    kind_of_count = "exact"

    @cached_property
    def count(self) -> int:
        queryset = cast(QuerySet[Any], self.object_list)
        if not queryset.query.where:
            estimate = _estimated_rows(queryset.model._meta.db_table)
            if estimate > self.CAP:
                self.kind_of_count = "about"
                return estimate
        counted: int = queryset.order_by()[: self.CAP + 1].count()
        self.kind_of_count = "over" if counted > self.CAP else "exact"
        return min(counted, self.CAP) if counted > self.CAP else counted

    @property
    def summary(self) -> str:
        count = self.count
        meta = cast(QuerySet[Any], self.object_list).model._meta
        noun = meta.verbose_name if count == 1 else meta.verbose_name_plural
        prefix = {"about": "about ", "over": "over "}.get(self.kind_of_count, "")
        return f"{prefix}{count:,} {noun}"


def _estimated_rows(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    return int(row[0]) if row else -1


class JobChangeList(ScopedChangeList):
    """A changelist whose date hierarchy lists periods between the first and last job.

    Django's own lists the distinct days or months with a scan of every matching row.
    """

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Job]:
        queryset = super().get_queryset(request, exclude_parameters)
        # The list never shows these, and a traceback can be 20 kB a row.
        return queryset.defer("payload", "result", "error_message", "error_traceback")

    @cached_property
    def date_nav(self) -> dict[str, Any]:
        return date_navigation(self)


def date_navigation(cl: ChangeList) -> dict[str, Any]:
    """The context of admin/date_hierarchy.html, from one MIN/MAX query.

    Periods between the first and the last job are offered, whether or not the current filter
    matches jobs in each of them.
    """
    field = cl.date_hierarchy
    year, month = cl.params.get(f"{field}__year"), cl.params.get(f"{field}__month")
    day = cl.params.get(f"{field}__day")
    nav: dict[str, Any] = {"show": True, "field_name": field.replace("_", " ")}

    def link(**params: Any) -> str:
        return cl.get_query_string({f"{field}__{k}": v for k, v in params.items()}, [f"{field}__"])

    if year and month and day:
        nav["back"] = {"link": link(year=year, month=month), "title": f"{year}-{int(month):02}"}
        nav["choices"] = [{"title": f"{year}-{int(month):02}-{int(day):02}"}]
        return nav
    # The bounds of every job the user may see, not of the filtered ones: with a filter such as
    # "finished today", MIN(created_at) would walk most of the created_at index.
    bounds = cl.root_queryset.aggregate(first=Min(field), last=Max(field))
    if bounds["first"] is None:
        return {"show": False}
    first, last = (timezone.localtime(bounds[key]) for key in ("first", "last"))
    if year and month:
        nav["back"] = {"link": link(year=year), "title": year}
        y, m = int(year), int(month)
        start = first.day if (first.year, first.month) == (y, m) else 1
        end = last.day if (last.year, last.month) == (y, m) else calendar.monthrange(y, m)[1]
        nav["choices"] = [
            {"link": link(year=year, month=month, day=d), "title": f"{int(month):02}-{d:02}"}
            for d in range(start, end + 1)
        ]
    elif year:
        y = int(year)
        start = first.month if first.year == y else 1
        end = last.month if last.year == y else 12
        nav["back"] = {"link": link(), "title": "All dates"}
        nav["choices"] = [
            {"link": link(year=year, month=m), "title": calendar.month_abbr[m] + f" {year}"}
            for m in range(start, end + 1)
        ]
    else:
        nav["choices"] = [
            {"link": link(year=y), "title": str(y)} for y in range(first.year, last.year + 1)
        ]
    return nav


# --- Filters ----------------------------------------------------------------------------------


class ChoicesFilter(admin.SimpleListFilter):
    """A filter on one field whose choices come from settings or code, never from the table."""

    field: str

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


class QueueFilter(ChoicesFilter):
    title, parameter_name, field = "queue", "queue", "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from django.conf import settings

        return [(name, name) for name in settings.CONVEYOR_QUEUES]


class KindFilter(ChoicesFilter):
    title, parameter_name, field = "kind", "kind", "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(kind.name, kind.name) for kind in all_kinds()]


class TenantFilter(ChoicesFilter):
    """The tenants the user may see; one small query on the tenant table."""

    title, parameter_name, field = "tenant", "tenant", "tenant_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        tenants = Tenant.objects.order_by("name")
        if not request.user.is_superuser:
            tenants = tenants.filter(pk__in=list(tenant_roles(request)))
        return [(str(tenant.pk), tenant.name) for tenant in tenants]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value and not value.isdigit():
            return queryset.none()
        return super().queryset(request, queryset)


class WorkflowFilter(admin.SimpleListFilter):
    """Jobs of one workflow's steps: reached from the workflow's page (`?workflow=<id>`)."""

    title, parameter_name = "workflow", "workflow"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, f"workflow {value[:8]}")] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        try:
            return of_workflow(queryset, UUID(value))
        except ValueError:
            return queryset.none()


class ScheduleFilter(ChoicesFilter):
    """Jobs one schedule enqueued; only schedules of the user's tenants are offered."""

    title, parameter_name, field = "schedule", "schedule", "schedule_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[Any, str]]:
        schedules = Job._meta.get_field("schedule").related_model._default_manager.all()
        if not request.user.is_superuser:
            schedules = schedules.filter(tenant__in=list(tenant_roles(request)))
        return [(schedule.pk, str(schedule)) for schedule in schedules.select_related("tenant")]
