"""Admin: schedules. Every change goes through `jobs.services.schedules`; built-in ones stay."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from rest_framework import serializers

from config.exceptions import DomainError
from jobs.kinds import all_kinds, public_kinds
from jobs.models import Schedule
from jobs.redaction import redact, restore_redacted
from jobs.services.schedules import (
    EDITABLE,
    check_schedule,
    create_schedule,
    delete_schedule,
    disable_schedule,
    enable_schedule,
    run_schedule_now,
    update_schedule,
)
from jobs.triggers import get_zone, upcoming_runs
from tenants.admin import TenantScopedAdminMixin

TRIGGER_HELP = (
    "Give exactly one: a cron expression (read in the time zone below), an interval in "
    "seconds, or a single run-at time."
)
RUNS = (
    "next_run_at",
    "upcoming",
    "last_run_at",
    "last_job_link",
    "run_count",
    "jobs_link",
    "is_system",
    "created_at",
    "updated_at",
)


def registered() -> set[str]:
    return {kind.name for kind in all_kinds()}


def kind_choices(current: str = "") -> list[tuple[str, str]]:
    """The public kinds, and the current one (a built-in schedule's, or one not registered)."""
    choices = [(kind.name, f"{kind.name} — {kind.description}") for kind in public_kinds()]
    if current and current not in {name for name, _ in choices}:
        label = current if current in registered() else f"{current} (not registered)"
        choices.insert(0, (current, label))
    return [("", "---------"), *choices]


def error_messages(messages: Any) -> list[str]:
    """A service's field errors as lines: nested payload errors become 'field: message'."""
    if isinstance(messages, dict):
        return [
            f"{field}: {line}"
            for field, inner in messages.items()
            for line in error_messages(inner)
        ]
    if isinstance(messages, list | tuple):
        return [line for message in messages for line in error_messages(message)]
    return [str(messages)]


class ScheduleForm(forms.ModelForm):
    """Refuses exactly what the services refuse, each message at its field."""

    class Meta:
        model = Schedule
        fields = ("tenant", *EDITABLE)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"] = forms.ChoiceField(choices=kind_choices(self.instance.kind))
        if "payload" in self.fields and not self.instance._state.adding:
            # Secrets are shown masked; a mask left as it was keeps the stored value.
            self.initial["payload"] = redact(self.instance.payload)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if "payload" in data and not self.instance._state.adding:
            data["payload"] = restore_redacted(data["payload"], self.instance.payload)
        candidate = copy.copy(self.instance)
        for name, value in data.items():
            setattr(candidate, name, value)
        if candidate.tenant_id is None:
            return data  # the tenant field says what is missing
        adding = self.instance._state.adding
        try:
            check_schedule(candidate, changed=None if adding else set(self.changed_data))
        except serializers.ValidationError as error:
            self._add_service_errors(error.detail)
        return data

    def _add_service_errors(self, detail: Any) -> None:
        for field, problems in dict(detail).items():
            if field in self.errors:
                continue  # the form already says what is wrong there
            self.add_error(field if field in self.fields else None, error_messages(problems))


@admin.register(Schedule)
class ScheduleAdmin(TenantScopedAdminMixin):
    """Tenant admins and owners edit their tenants' schedules; members may look at them."""

    access_area = "schedules"

    form = ScheduleForm
    list_display = (
        "name",
        "tenant",
        "kind",
        "trigger",
        "enabled",
        "next_run",
        "last_run",
        "last_job_status",
        "run_count",
    )
    list_display_links = ("name",)
    list_editable = ("enabled",)
    list_filter = ("enabled", "tenant", "is_system", "kind")
    list_select_related = ("tenant", "last_job")
    search_fields = ("name", "kind")
    ordering = ("tenant__name", "name")
    actions = ["enable_selected", "disable_selected", "run_now_selected"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[tuple[Any, Any]]:
        payload = "payload" if self.has_change_permission(request, obj) else "payload_redacted"
        fieldsets: list[tuple[Any, Any]] = [
            (None, {"fields": ("tenant", "name", "kind", payload, "enabled")}),
            (
                "Trigger",
                {
                    "fields": ("cron", "time_zone", "interval_seconds", "run_at"),
                    "description": TRIGGER_HELP,
                },
            ),
            (
                "Options",
                {
                    "fields": (
                        "queue",
                        "priority",
                        "overlap_policy",
                        "missed_run_policy",
                        "starts_at",
                        "ends_at",
                    )
                },
            ),
        ]
        if obj is not None:
            fieldsets.append(("Runs", {"fields": RUNS}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return ("tenant", "payload_redacted", *RUNS)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_system:
            return False
        return super().has_delete_permission(request, obj)

    # --- Saving and deleting through the services ---------------------------------------------

    def save_model(self, request: HttpRequest, obj: Schedule, form: Any, change: bool) -> None:
        self.check_tenant(request, obj)
        fields = {name: getattr(obj, name) for name in EDITABLE if name in form.cleaned_data}
        if change:
            saved = update_schedule(obj, by=request.user, **fields)
        else:
            saved = create_schedule(tenant=obj.tenant, by=request.user, **fields)
        obj.pk, obj.next_run_at, obj.starts_at = saved.pk, saved.next_run_at, saved.starts_at

    def delete_model(self, request: HttpRequest, obj: Schedule) -> None:
        delete_schedule(obj, by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        # The confirmation page already refuses a selection with a built-in schedule in it.
        for schedule in self.editable_queryset(request, queryset).filter(is_system=False):
            delete_schedule(schedule, by=request.user)

    # --- Actions --------------------------------------------------------------------------------

    @admin.action(description="Enable selected schedules", permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        schedules = list(self.editable_queryset(request, queryset).filter(enabled=False))
        for schedule in schedules:
            enable_schedule(schedule, by=request.user)
            self.log_change(request, schedule, "Enabled.")
        self.message_user(request, f"Enabled {len(schedules)} schedule(s).")

    @admin.action(description="Disable selected schedules", permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        schedules = list(self.editable_queryset(request, queryset).filter(enabled=True))
        for schedule in schedules:
            disable_schedule(schedule, by=request.user)
            self.log_change(request, schedule, "Disabled.")
        self.message_user(request, f"Disabled {len(schedules)} schedule(s).")

    @admin.action(description="Run selected schedules now", permissions=["change"])
    def run_now_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        started, refused = 0, []
        for schedule in self.editable_queryset(request, queryset).select_related("tenant"):
            try:
                job = run_schedule_now(schedule, by=request.user)
            except (DomainError, serializers.ValidationError) as error:
                refused.append(f"{schedule.name}: {' '.join(error_messages(_reason(error)))}")
                continue
            self.log_change(request, schedule, f"Run now: enqueued job {job.pk}.")
            started += 1
        self.message_user(request, f"Enqueued {started} job(s).")
        if refused:
            self.message_user(request, "Not run: " + "; ".join(refused), messages.WARNING)

    # --- Columns and read-only fields -----------------------------------------------------------

    @admin.display(description="Next run", ordering="next_run_at")
    def next_run(self, schedule: Schedule) -> str:
        return _when(schedule.next_run_at, schedule) if schedule.enabled else "disabled"

    @admin.display(description="Last run", ordering="last_run_at")
    def last_run(self, schedule: Schedule) -> str:
        return _when(schedule.last_run_at, schedule)

    @admin.display(description="Last job")
    def last_job_status(self, schedule: Schedule) -> SafeString | str:
        if schedule.last_job is None:
            return "–"
        url = reverse("admin:jobs_job_change", args=[schedule.last_job.pk])
        return format_html('<a href="{}">{}</a>', url, schedule.last_job.status)

    @admin.display(description="Last job")
    def last_job_link(self, schedule: Schedule) -> SafeString | str:
        job = schedule.last_job
        if job is None:
            return "–"
        url = reverse("admin:jobs_job_change", args=[job.pk])
        return format_html('<a href="{}">{}</a> ({})', url, job.pk, job.status)

    @admin.display(description="Jobs")
    def jobs_link(self, schedule: Schedule) -> SafeString:
        url = reverse("admin:jobs_job_changelist")
        return format_html(
            '<a href="{}?schedule={}">All jobs of this schedule</a>', url, schedule.pk
        )

    @admin.display(description="Next 5 runs")
    def upcoming(self, schedule: Schedule) -> SafeString | str:
        if not schedule.enabled:
            return "None: the schedule is disabled."
        runs = upcoming_runs(schedule, after=timezone.now(), count=5)
        if not runs:
            return "None: the schedule has no runs left."
        return format_html(
            "<ol>{}</ol>",
            format_html_join("", "<li>{}</li>", ((_when(run, schedule),) for run in runs)),
        )

    @admin.display(description="Payload")
    def payload_redacted(self, schedule: Schedule) -> SafeString:
        text = json.dumps(redact(schedule.payload), indent=2, sort_keys=True, cls=DjangoJSONEncoder)
        return format_html("<pre>{}</pre>", text)


def _when(moment: datetime | None, schedule: Schedule) -> str:
    """UTC, and the schedule's own wall-clock time when it differs: '2026-03-08 07:00 UTC (…)'."""
    if moment is None:
        return "–"
    shown = f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    if schedule.cron and schedule.time_zone != "UTC":
        local = moment.astimezone(get_zone(schedule.time_zone))
        shown += f" ({local:%Y-%m-%d %H:%M %Z} {schedule.time_zone})"
    return shown


def _reason(error: DomainError | serializers.ValidationError) -> Any:
    return error.detail if isinstance(error, serializers.ValidationError) else str(error)
