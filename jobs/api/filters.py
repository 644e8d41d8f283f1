"""Which jobs a request means (one FilterSet for `jobs/` and the bulk operations), and which log
lines `jobs/logs/` means."""

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.conf import settings
from django.db.models import QuerySet
from django_filters.fields import IsoDateTimeField
from rest_framework import exceptions
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request
from rest_framework.views import APIView

from jobs.kinds import all_kinds
from jobs.models import Job, JobLog, Priority
from jobs.selectors.jobs import of_workflow


def _queue_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in settings.CONVEYOR_QUEUES]


def _kind_choices() -> list[tuple[str, str]]:
    return [(kind.name, kind.name) for kind in all_kinds()]


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time with any offset, passed on in UTC (PostgreSQL takes offsets to ±15:59)."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("This time is out of range.", code="invalid") from None


class TimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class JobFilter(django_filters.FilterSet):
    """Repeat a multi-valued filter to match any of its values: `?status=failed&status=canceled`."""

    status = django_filters.MultipleChoiceFilter(choices=Job.Status.choices)
    queue = django_filters.MultipleChoiceFilter(choices=_queue_choices)
    kind = django_filters.MultipleChoiceFilter(choices=_kind_choices)
    priority = django_filters.MultipleChoiceFilter(choices=Priority.choices)
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")
    finished_after = TimeFilter(field_name="finished_at", lookup_expr="gte")
    finished_before = TimeFilter(field_name="finished_at", lookup_expr="lt")
    batch = django_filters.UUIDFilter(field_name="batch_id")
    parent = django_filters.UUIDFilter(field_name="parent_id")
    schedule = django_filters.UUIDFilter(field_name="schedule_id")
    idempotency_key = django_filters.CharFilter(max_length=200)
    workflow = django_filters.UUIDFilter(
        method="filter_workflow", help_text="Only the jobs of this workflow's steps."
    )

    class Meta:
        model = Job
        fields: list[str] = []

    def filter_workflow(self, queryset: QuerySet[Job], name: str, value: Any) -> QuerySet[Job]:
        return of_workflow(queryset, value) if value else queryset

    @property
    def is_narrowed(self) -> bool:
        """Whether any filter was given: bulk operations refuse to act on every job at once."""
        return any(value not in (None, "", []) for value in self.form.cleaned_data.values())


class JobOrdering(OrderingFilter):
    """`?ordering=created_at` or `-created_at` (the default); an unknown field answers 400.

    Only creation time is offered: cursor pagination needs an unchanging, never-null position,
    and the id breaks ties so that no job is skipped or shown twice between pages.
    """

    ordering_fields = ["created_at"]
    ordering_description = "`-created_at` (newest first, the default) or `created_at`."

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: APIView) -> list[str]:
        terms = [
            term.strip() for term in request.query_params.get(self.ordering_param, "").split(",")
        ]
        terms = [term for term in terms if term]
        unknown = [term for term in terms if term.lstrip("-") not in self.ordering_fields]
        if unknown:
            raise exceptions.ValidationError(
                {self.ordering_param: [f"Order by created_at or -created_at, not {unknown[0]!r}."]}
            )
        first = terms[0] if terms else "-created_at"
        return [first, "-id" if first.startswith("-") else "id"]


class JobLogFilter(django_filters.FilterSet):
    """`jobs/logs/`: the tenant's log lines by job, event, level and time."""

    job = django_filters.UUIDFilter(field_name="job_id")
    event = django_filters.MultipleChoiceFilter(choices=JobLog.Event.choices)
    level = django_filters.MultipleChoiceFilter(choices=JobLog.Level.choices)
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = JobLog
        fields: list[str] = []
