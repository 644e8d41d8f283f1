"""Admin: workflows (submit a graph, see it drawn live, cancel, retry failed steps) and
automations (define, enable, disable, see their starts). Every change goes through a service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from rest_framework import serializers

from communications.services.events import SUBSCRIBABLE
from jobs.admin.display import job_link, jobs_link, pretty_json, short_time, status_badge
from jobs.admin.schedules import error_messages
from jobs.errors import InvalidTransition
from tenants.admin import TenantScopedAdminMixin
from tenants.models import Role
from workflows.diagram import render_svg
from workflows.graph import check_graph
from workflows.models import Automation, AutomationStart, Workflow, WorkflowStep
from workflows.services.automations import (
    EDITABLE,
    REFUSED_EVENTS,
    check_automation,
    create_automation,
    update_automation,
)
from workflows.services.running import (
    cancel_workflow,
    check_on_end,
    retry_failed_steps,
    start_workflow,
)

if TYPE_CHECKING:
    _StepInline = admin.TabularInline[WorkflowStep, Workflow]
    _StartInline = admin.TabularInline[AutomationStart, Automation]
else:
    _StepInline = _StartInline = admin.TabularInline

REFRESH_SECONDS = 2
# Replaces the drawing with a fresh one while the workflow runs; stops once it has ended.
REFRESH_SCRIPT = """<script>
(function () {
  var box = document.getElementById("workflow-graph");
  if (!box || box.dataset.running !== "1") return;
  var timer = setInterval(function () {
    fetch(box.dataset.url, {credentials: "same-origin"}).then(function (response) {
      if (response.headers.get("X-Workflow-Running") !== "1") clearInterval(timer);
      return response.text();
    }).then(function (svg) { box.innerHTML = svg; });
  }, MILLISECONDS);
})();
</script>""".replace("MILLISECONDS", str(REFRESH_SECONDS * 1000))


class WorkflowSubmitForm(forms.ModelForm):
    """A graph as the API takes it; the service checks it whole and names the step at fault."""

    steps = forms.JSONField(help_text="A list of steps: name, kind, payload, delay, needs, …")
    on_end = forms.JSONField(
        required=False, help_text='Optional: {"kind": "jobs.noop", "payload": {}}.'
    )

    class Meta:
        model = Workflow
        fields = ("tenant", "name", "input")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        checks = [("steps", check_graph), ("on_end", check_on_end)]
        for field, check in checks:
            if data.get(field) is None and field == "on_end":
                continue
            try:
                check(data.get(field))
            except serializers.ValidationError as error:
                self.add_error(field, error_messages(error.detail))
        if not isinstance(data.get("input") or {}, dict):
            self.add_error("input", "The input is a JSON object.")
        return data


class StepInline(_StepInline):
    model = WorkflowStep
    extra = 0
    can_delete = False
    fields = ("name", "kind", "status_shown", "attempts", "job_shown", "result_shown", "reason")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[WorkflowStep]:
        return super().get_queryset(request).select_related("job")

    @admin.display(description="status")
    def status_shown(self, step: WorkflowStep) -> SafeString:
        return status_badge(step.status)

    @admin.display(description="attempts")
    def attempts(self, step: WorkflowStep) -> str:
        return f"{step.job.attempt} of {step.job.max_attempts}" if step.job else "–"

    @admin.display(description="job")
    def job_shown(self, step: WorkflowStep) -> SafeString | str:
        return job_link(step.job_id) if step.job_id else "–"

    @admin.display(description="result")
    def result_shown(self, step: WorkflowStep) -> SafeString | str:
        if step.job is None:
            return "–"
        return pretty_json(step.job.result) if step.job.result is not None else "–"


@admin.register(Workflow)
class WorkflowAdmin(TenantScopedAdminMixin):
    """Agents and above submit, cancel and retry their tenants' workflows; members look."""

    edit_role = Role.AGENT
    list_display = ("name", "tenant", "status_shown", "progress", "automation", "started", "ended")
    list_filter = ("status", "tenant")
    list_select_related = ("tenant", "automation")
    search_fields = ("name",)
    actions = ["cancel_selected", "retry_selected"]
    inlines = [StepInline]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = WorkflowSubmitForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("tenant", "name", "steps", "input", "on_end")
        return (
            "graph",
            "name",
            "tenant",
            "status_shown",
            "progress",
            "input_shown",
            "automation",
            "on_end_kind",
            "on_end_job_link",
            "jobs",
            "created_at",
            "finished_at",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.get_fields(request, obj)

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return [StepInline] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Workflow, form: Any, change: bool) -> None:
        if change:
            return  # a workflow changes through its actions only
        self.check_tenant(request, obj)
        workflow = start_workflow(
            tenant=obj.tenant,
            name=obj.name,
            steps=form.cleaned_data["steps"],
            input=form.cleaned_data.get("input") or {},
            on_end=form.cleaned_data.get("on_end") or None,
            by=request.user,
        )
        obj.pk = workflow.pk
        obj._state.adding = False

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Steps are written by the service."""

    # --- The drawing --------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        graph = path(
            "<uuid:pk>/graph.svg",
            self.admin_site.admin_view(self.graph_view),
            name="workflows_workflow_graph",
        )
        return [graph, *super().get_urls()]

    def graph_view(self, request: HttpRequest, pk: Any) -> HttpResponse:
        workflow = self.get_queryset(request).filter(pk=pk).first()
        if workflow is None:
            raise Http404("No such workflow.")
        response = HttpResponse(_svg(workflow), content_type="image/svg+xml")
        response["X-Workflow-Running"] = "1" if workflow.status == Workflow.Status.RUNNING else "0"
        response["Cache-Control"] = "no-store"
        return response

    @admin.display(description="graph")
    def graph(self, workflow: Workflow) -> SafeString:
        url = reverse("admin:workflows_workflow_graph", args=[workflow.pk])
        running = "1" if workflow.status == Workflow.Status.RUNNING else "0"
        return format_html(
            '<div id="workflow-graph" data-url="{}" data-running="{}" style="overflow:auto">'
            "{}</div>{}",
            url,
            running,
            mark_safe(_svg(workflow)),
            mark_safe(REFRESH_SCRIPT),
        )

    # --- Actions ------------------------------------------------------------------------------

    @admin.action(description="Cancel selected workflows", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        workflows = list(self.editable_queryset(request, queryset).filter(status="running"))
        for workflow in workflows:
            cancel_workflow(workflow, by=request.user)
        self.message_user(request, f"Canceled {len(workflows)} workflow(s).")

    @admin.action(description="Retry failed steps of selected workflows", permissions=["change"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        ended = self.editable_queryset(request, queryset).filter(status__in=["failed", "canceled"])
        retried = 0
        for workflow in ended:
            try:
                retry_failed_steps(workflow, by=request.user)
                retried += 1
            except InvalidTransition as error:
                self.message_user(request, str(error), messages.WARNING)
        self.message_user(request, f"Retried the failed steps of {retried} workflow(s).")

    # --- Columns ------------------------------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_shown(self, workflow: Workflow) -> SafeString:
        return status_badge(workflow.status)

    @admin.display(description="steps done")
    def progress(self, workflow: Workflow) -> str:
        return f"{workflow.done} of {workflow.total}"

    @admin.display(description="started", ordering="created_at")
    def started(self, workflow: Workflow) -> SafeString | str:
        return short_time(workflow.created_at)

    @admin.display(description="ended", ordering="finished_at")
    def ended(self, workflow: Workflow) -> SafeString | str:
        return short_time(workflow.finished_at)

    @admin.display(description="input")
    def input_shown(self, workflow: Workflow) -> SafeString:
        return pretty_json(workflow.input)

    @admin.display(description="on_end job")
    def on_end_job_link(self, workflow: Workflow) -> SafeString | str:
        return job_link(workflow.on_end_job_id) if workflow.on_end_job_id else "–"

    @admin.display(description="jobs")
    def jobs(self, workflow: Workflow) -> SafeString:
        return jobs_link("The jobs of its steps", workflow=workflow.pk)


def _svg(workflow: Workflow) -> str:
    return render_svg(list(workflow.steps.select_related("job").order_by("position")))


# --- Automations --------------------------------------------------------------------------------


class AutomationForm(forms.ModelForm):
    """Refuses what the service refuses, each message at its field."""

    event_type = forms.ChoiceField(
        choices=[(e, e) for e in SUBSCRIBABLE if e not in REFUSED_EVENTS]
    )

    class Meta:
        model = Automation
        fields = ("tenant", *EDITABLE)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        fields = {name: data[name] for name in EDITABLE if name in data}
        try:
            check_automation(fields)
        except serializers.ValidationError as error:
            detail: dict[str, Any] = error.detail  # type: ignore[assignment]
            for field, problems in detail.items():
                if field not in self.errors:
                    target = field if field in self.fields else None
                    self.add_error(target, error_messages(problems))
        return data


class StartInline(_StartInline):
    model = AutomationStart
    extra = 0
    can_delete = False
    fields = ("created_at", "event_type", "event_id", "workflow_link")
    readonly_fields = fields
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="workflow")
    def workflow_link(self, start: AutomationStart) -> SafeString | str:
        if start.workflow_id is None:
            return "–"
        url = reverse("admin:workflows_workflow_change", args=[start.workflow_id])
        return format_html('<a href="{}">{}</a>', url, str(start.workflow_id)[:8])


@admin.register(Automation)
class AutomationAdmin(TenantScopedAdminMixin):
    """Tenant admins and owners define automations; members may look at them."""

    form = AutomationForm
    list_display = ("name", "tenant", "event_type", "enabled", "start_count", "last_started_at")
    list_editable = ("enabled",)
    list_filter = ("enabled", "event_type", "tenant")
    list_select_related = ("tenant",)
    search_fields = ("name", "workflow_name")
    actions = ["enable_selected", "disable_selected"]
    inlines = [StartInline]

    def save_model(self, request: HttpRequest, obj: Automation, form: Any, change: bool) -> None:
        self.check_tenant(request, obj)
        fields = {name: form.cleaned_data[name] for name in EDITABLE if name in form.cleaned_data}
        if change:
            update_automation(obj, **fields)
        else:
            obj.pk = create_automation(tenant=obj.tenant, by=request.user, **fields).pk
            obj._state.adding = False

    @admin.action(description="Enable selected automations", permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[Automation]) -> None:
        chosen = list(self.editable_queryset(request, queryset).filter(enabled=False))
        for automation in chosen:
            update_automation(automation, enabled=True)
        self.message_user(request, f"Enabled {len(chosen)} automation(s).")

    @admin.action(description="Disable selected automations", permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[Automation]) -> None:
        chosen = list(self.editable_queryset(request, queryset).filter(enabled=True))
        for automation in chosen:
            update_automation(automation, enabled=False)
        self.message_user(request, f"Disabled {len(chosen)} automation(s).")
