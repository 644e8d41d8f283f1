"""API views: workflows (submit, list, read with steps and edges, cancel, retry failed steps) and
automations (list, create, read, change, delete).

Members read; agents submit, cancel and retry workflows; admins and owners manage automations.
Another tenant's workflow or automation answers 404 like a missing one.
"""

from typing import Any
from uuid import UUID

from django.urls import URLPattern, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.common import errors
from jobs.redaction import redact
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, TenantRequest
from workflows.models import Automation, Edge, Join, Workflow, WorkflowStep
from workflows.selectors import (
    get_automation,
    get_workflow,
    list_automations,
    list_starts,
    list_workflows,
)
from workflows.services.automations import (
    create_automation,
    delete_automation,
    update_automation,
)
from workflows.services.running import cancel_workflow, retry_failed_steps, start_workflow

TAGS = ["workflows"]


# --- Input and output ---------------------------------------------------------------------------


class NeedInput(serializers.Serializer):
    step = serializers.CharField(help_text="A parent step's name.")
    when = serializers.ChoiceField(choices=Edge.choices, default=Edge.ON_SUCCESS)


class CheckInput(serializers.Serializer):
    field = serializers.CharField(help_text="A dotted path, e.g. steps.lookup.result.status.")
    op = serializers.CharField(help_text="eq, ne, gt, gte, lt, lte, in, not_in, contains, …")
    value = serializers.JSONField(required=False)


class StepInput(serializers.Serializer):
    """Documents a step; the graph as a whole is checked by the service."""

    name = serializers.CharField()
    kind = serializers.CharField(help_text="A registered kind, e.g. workflows.send_message.")
    payload = serializers.JSONField(
        default=dict, help_text="May refer to {{ input.x }} and {{ steps.<name>.result.x }}."
    )
    delay = serializers.IntegerField(default=0, help_text="Seconds to wait once it is ready.")
    needs = NeedInput(many=True, required=False, help_text="Parent names, or {step, when}.")
    join = serializers.ChoiceField(choices=Join.choices, default=Join.ALL)
    condition = CheckInput(many=True, required=False, help_text="Every check must hold.")


@extend_schema_field(StepInput(many=True))
class StepsField(serializers.JSONField):
    """The steps as given: the service checks the graph whole and names the step at fault."""


class WorkflowInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    steps = StepsField(help_text="The graph: a list of steps.")
    input = serializers.JSONField(default=dict, help_text="What templates read as `input`.")
    on_end = serializers.JSONField(
        default=None, allow_null=True, help_text='{"kind": …, "payload": {…}} run once at the end.'
    )


class StepOutput(serializers.ModelSerializer):
    status = serializers.CharField(
        help_text="waiting, running, succeeded, failed, canceled or skipped."
    )
    job = serializers.UUIDField(source="job_id", allow_null=True)
    job_status = serializers.SerializerMethodField()
    attempt = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    payload = serializers.SerializerMethodField()

    class Meta:
        model = WorkflowStep
        fields = (
            "name",
            "kind",
            "status",
            "reason",
            "payload",
            "delay",
            "needs",
            "join",
            "condition",
            "job",
            "job_status",
            "attempt",
            "result",
            "error",
            "finished_at",
        )

    def get_job_status(self, step: WorkflowStep) -> str | None:
        return step.job.status if step.job else None

    def get_attempt(self, step: WorkflowStep) -> int:
        return step.job.attempt if step.job else 0

    def get_result(self, step: WorkflowStep) -> Any:
        return redact(step.job.result) if step.job else None

    def get_error(self, step: WorkflowStep) -> str:
        return step.job.error_message if step.job else ""

    def get_payload(self, step: WorkflowStep) -> Any:
        return redact(step.payload)


class WorkflowOutput(serializers.ModelSerializer):
    status = serializers.CharField(help_text="running, succeeded, failed or canceled.")
    automation = serializers.UUIDField(source="automation_id", allow_null=True)
    on_end_job = serializers.UUIDField(source="on_end_job_id", allow_null=True)
    progress = serializers.SerializerMethodField(help_text="Steps ended, as a percentage.")

    class Meta:
        model = Workflow
        fields: tuple[str, ...] = (
            "id",
            "name",
            "status",
            "total",
            "done",
            "progress",
            "input",
            "on_end_kind",
            "on_end_job",
            "automation",
            "created_at",
            "finished_at",
        )

    def get_progress(self, workflow: Workflow) -> int:
        return workflow.done * 100 // workflow.total if workflow.total else 100


class EdgeOutput(serializers.Serializer):
    source = serializers.CharField()  # type: ignore[assignment]
    target = serializers.CharField()
    when = serializers.CharField()


class WorkflowDetailOutput(WorkflowOutput):
    steps = StepOutput(many=True)
    edges = serializers.SerializerMethodField()
    jobs = serializers.SerializerMethodField(help_text="The job list, narrowed to its steps.")

    class Meta(WorkflowOutput.Meta):
        fields = (*WorkflowOutput.Meta.fields, "steps", "edges", "jobs")

    @extend_schema_field(EdgeOutput(many=True))
    def get_edges(self, workflow: Workflow) -> list[dict[str, Any]]:
        return [
            {"source": need["step"], "target": step.name, "when": need["when"]}
            for step in workflow.steps.all()
            for need in step.needs
        ]

    def get_jobs(self, workflow: Workflow) -> str:
        return f"/api/v1/jobs/?workflow={workflow.pk}"


class AutomationInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    event_type = serializers.CharField(max_length=50, help_text="e.g. contact.created.")
    conditions = serializers.JSONField(
        default=list,  # type: ignore[arg-type]
        help_text='Checks on the event: [{"field": "data.contact.company", …}].',
    )
    workflow_name = serializers.CharField(max_length=200)
    steps = StepsField(help_text="The graph each start runs, as workflows take it.")
    enabled = serializers.BooleanField(default=True)


class AutomationOutput(serializers.ModelSerializer):
    class Meta:
        model = Automation
        fields: tuple[str, ...] = (
            "id",
            "name",
            "event_type",
            "conditions",
            "workflow_name",
            "steps",
            "enabled",
            "start_count",
            "last_started_at",
            "created_at",
            "updated_at",
        )


class StartOutput(serializers.Serializer):
    event_id = serializers.CharField()
    event_type = serializers.CharField()
    workflow = serializers.UUIDField(source="workflow_id", allow_null=True)
    created_at = serializers.DateTimeField()


class AutomationDetailOutput(AutomationOutput):
    recent_starts = serializers.SerializerMethodField()

    class Meta(AutomationOutput.Meta):
        fields = (*AutomationOutput.Meta.fields, "recent_starts")

    @extend_schema_field(StartOutput(many=True))
    def get_recent_starts(self, automation: Automation) -> list[dict[str, Any]]:
        return StartOutput(list_starts(automation=automation), many=True).data  # type: ignore[return-value]


# --- Views --------------------------------------------------------------------------------------


class MembersReadAgentsWrite(APIView):
    permission_classes = [HasTenantRole]
    access_area = "workflows"


class MembersReadAdminsWrite(APIView):
    permission_classes = [HasTenantRole]
    access_area = "automations"


class WorkflowListView(MembersReadAgentsWrite):
    pagination_class = PageNumberPagination

    class Query(serializers.Serializer):
        status = serializers.ChoiceField(choices=Workflow.Status.choices, required=False)

    @extend_schema(
        operation_id="workflows_list",
        tags=TAGS,
        parameters=[
            TENANT_PARAMETER,
            OpenApiParameter("status", OpenApiTypes.STR, enum=Workflow.Status.values),
            OpenApiParameter("page", OpenApiTypes.INT),
        ],
        responses={200: WorkflowOutput(many=True), **errors(400, 403)},
    )
    def get(self, request: TenantRequest) -> Response:
        """The tenant's workflows, newest first."""
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        workflows = list_workflows(tenant=request.tenant, **query.validated_data)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(workflows, request, view=self)
        return paginator.get_paginated_response(WorkflowOutput(page, many=True).data)

    @extend_schema(
        operation_id="workflows_create",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=WorkflowInput,
        responses={201: WorkflowDetailOutput, **errors(400, 403)},
        description="Submit a graph of steps; it is checked whole and its first steps start.",
    )
    def post(self, request: TenantRequest) -> Response:
        data = WorkflowInput(data=request.data)
        data.is_valid(raise_exception=True)
        workflow = start_workflow(tenant=request.tenant, by=request.user, **data.validated_data)
        workflow = get_workflow(tenant=request.tenant, pk=workflow.pk)
        return Response(WorkflowDetailOutput(workflow).data, status=status.HTTP_201_CREATED)


class WorkflowDetailView(MembersReadAgentsWrite):
    @extend_schema(
        operation_id="workflows_retrieve",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={200: WorkflowDetailOutput, **errors(403, 404)},
    )
    def get(self, request: TenantRequest, pk: UUID) -> Response:
        """A workflow with its steps (status, attempts, result) and edges."""
        return Response(WorkflowDetailOutput(get_workflow(tenant=request.tenant, pk=pk)).data)


class WorkflowCancelView(MembersReadAgentsWrite):
    @extend_schema(
        operation_id="workflows_cancel",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=None,
        responses={200: WorkflowDetailOutput, **errors(403, 404, 409)},
    )
    def post(self, request: TenantRequest, pk: UUID) -> Response:
        """Stop every step not yet ended; the workflow ends canceled (again is harmless)."""
        cancel_workflow(get_workflow(tenant=request.tenant, pk=pk), by=request.user)
        return Response(WorkflowDetailOutput(get_workflow(tenant=request.tenant, pk=pk)).data)


class WorkflowRetryView(MembersReadAgentsWrite):
    @extend_schema(
        operation_id="workflows_retry",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=None,
        responses={202: WorkflowDetailOutput, **errors(403, 404, 409)},
    )
    def post(self, request: TenantRequest, pk: UUID) -> Response:
        """Run the failed and canceled steps again and continue the graph from them."""
        retry_failed_steps(get_workflow(tenant=request.tenant, pk=pk), by=request.user)
        workflow = get_workflow(tenant=request.tenant, pk=pk)
        return Response(WorkflowDetailOutput(workflow).data, status=status.HTTP_202_ACCEPTED)


class AutomationListView(MembersReadAdminsWrite):
    pagination_class = PageNumberPagination

    @extend_schema(
        operation_id="automations_list",
        tags=TAGS,
        parameters=[TENANT_PARAMETER, OpenApiParameter("page", OpenApiTypes.INT)],
        responses={200: AutomationOutput(many=True), **errors(403)},
    )
    def get(self, request: TenantRequest) -> Response:
        """The tenant's automations, by name."""
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(list_automations(tenant=request.tenant), request, self)
        return paginator.get_paginated_response(AutomationOutput(page, many=True).data)

    @extend_schema(
        operation_id="automations_create",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=AutomationInput,
        responses={201: AutomationDetailOutput, **errors(400, 403)},
    )
    def post(self, request: TenantRequest) -> Response:
        """On event `event_type` matching `conditions`, start the workflow `steps`."""
        data = AutomationInput(data=request.data)
        data.is_valid(raise_exception=True)
        automation = create_automation(
            tenant=request.tenant, by=request.user, **data.validated_data
        )
        return Response(AutomationDetailOutput(automation).data, status=status.HTTP_201_CREATED)


class AutomationDetailView(MembersReadAdminsWrite):
    @extend_schema(
        operation_id="automations_retrieve",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={200: AutomationDetailOutput, **errors(403, 404)},
    )
    def get(self, request: TenantRequest, pk: UUID) -> Response:
        """An automation and its twenty latest starts."""
        return Response(AutomationDetailOutput(get_automation(tenant=request.tenant, pk=pk)).data)

    @extend_schema(
        operation_id="automations_partial_update",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=AutomationInput(partial=True),
        responses={200: AutomationDetailOutput, **errors(400, 403, 404)},
    )
    def patch(self, request: TenantRequest, pk: UUID) -> Response:
        """Change some fields; `{"enabled": false}` disables it."""
        automation = get_automation(tenant=request.tenant, pk=pk)
        data = AutomationInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        automation = update_automation(automation, **data.validated_data)
        return Response(AutomationDetailOutput(automation).data)

    @extend_schema(
        operation_id="automations_destroy",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: TenantRequest, pk: UUID) -> Response:
        """Delete it; the workflows it started stay."""
        delete_automation(get_automation(tenant=request.tenant, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns: list[URLPattern] = [
    path("workflows/", WorkflowListView.as_view(), name="workflow-list"),
    path("workflows/<uuid:pk>/", WorkflowDetailView.as_view(), name="workflow-detail"),
    path("workflows/<uuid:pk>/cancel/", WorkflowCancelView.as_view(), name="workflow-cancel"),
    path("workflows/<uuid:pk>/retry/", WorkflowRetryView.as_view(), name="workflow-retry"),
    path("automations/", AutomationListView.as_view(), name="automation-list"),
    path("automations/<uuid:pk>/", AutomationDetailView.as_view(), name="automation-detail"),
]
