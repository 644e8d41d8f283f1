"""Reads: a tenant's workflows with their steps, automations and their starts."""

from uuid import UUID

from django.db.models import Prefetch, QuerySet

from tenants.models import Tenant
from workflows.models import Automation, AutomationStart, Workflow, WorkflowStep


def list_workflows(*, tenant: Tenant, status: str | None = None) -> QuerySet[Workflow]:
    workflows = Workflow.objects.for_tenant(tenant)
    return workflows.filter(status=status) if status else workflows


def get_workflow(*, tenant: Tenant, pk: UUID | str) -> Workflow:
    """The tenant's workflow with its steps and their jobs; another tenant's is DoesNotExist."""
    steps = WorkflowStep.objects.select_related("job").order_by("position")
    return (
        Workflow.objects.for_tenant(tenant)
        .prefetch_related(Prefetch("steps", queryset=steps))
        .get(pk=pk)
    )


def list_automations(*, tenant: Tenant) -> QuerySet[Automation]:
    return Automation.objects.for_tenant(tenant)


def get_automation(*, tenant: Tenant, pk: UUID | str) -> Automation:
    return Automation.objects.for_tenant(tenant).get(pk=pk)


def list_starts(*, automation: Automation, limit: int = 20) -> list[AutomationStart]:
    return list(automation.starts.order_by("-created_at")[:limit])
