"""Automations: on a tenant's event that matches, start a workflow with the event's data, once."""

import hashlib
import json
import logging
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import serializers

from communications.services.events import SUBSCRIBABLE
from tenants.models import Tenant
from tenants.users import Actor, acting_user
from workflows.conditions import check_conditions, holds
from workflows.graph import check_graph
from workflows.models import Automation, AutomationStart, Workflow
from workflows.services.running import start_workflow

logger = logging.getLogger(__name__)

EDITABLE = ("name", "event_type", "conditions", "workflow_name", "steps", "enabled")
# The workflow an automation starts must not start it again, directly or through its own end.
REFUSED_EVENTS = ("workflow.finished",)


def check_automation(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields, checked: a known event, well-formed conditions, a valid graph."""
    errors: dict[str, Any] = {}
    event_type = fields.get("event_type")
    if event_type is not None and (event_type not in SUBSCRIBABLE or event_type in REFUSED_EVENTS):
        choices = ", ".join(e for e in SUBSCRIBABLE if e not in REFUSED_EVENTS)
        errors["event_type"] = [f"Choose one of {choices}."]
    if "conditions" in fields:
        try:
            fields["conditions"] = check_conditions(fields["conditions"])
        except ValueError as error:
            errors["conditions"] = [str(error)]
    if "steps" in fields:
        try:
            check_graph(fields["steps"])
        except serializers.ValidationError as error:
            errors.update(error.detail)  # type: ignore[arg-type]
    if errors:
        raise serializers.ValidationError(errors)
    return fields


@transaction.atomic
def create_automation(*, tenant: Tenant, by: Actor = None, **fields: Any) -> Automation:
    """Save a new automation (enabled unless told otherwise)."""
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise TypeError(f"Not fields of an automation: {', '.join(unknown)}.")
    check_automation(fields)
    if Automation.objects.for_tenant(tenant).filter(name=fields.get("name")).exists():
        raise serializers.ValidationError({"name": ["Another automation has this name."]})
    return Automation.objects.create(tenant=tenant, created_by=acting_user(by), **fields)


@transaction.atomic
def update_automation(automation: Automation, **fields: Any) -> Automation:
    """Change some fields (enable or disable it with `enabled`)."""
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise TypeError(f"Not fields of an automation: {', '.join(unknown)}.")
    check_automation(fields)
    name = fields.get("name")
    others = Automation.objects.for_tenant(automation.tenant).exclude(pk=automation.pk)
    if name is not None and others.filter(name=name).exists():
        raise serializers.ValidationError({"name": ["Another automation has this name."]})
    for field, value in fields.items():
        setattr(automation, field, value)
    automation.save(update_fields=[*fields, "updated_at"])
    return automation


def delete_automation(automation: Automation) -> None:
    """Delete it; the workflows it started stay."""
    Automation.objects.filter(pk=automation.pk).delete()


def event_key(event: dict[str, Any]) -> str:
    """An event's identity: its type and data (a repeat of the same event has the same key)."""
    canonical = json.dumps(
        [event["type"], event.get("data")], sort_keys=True, cls=DjangoJSONEncoder
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def start_matching_automations(
    sender: Any, *, tenant: Tenant, event: dict[str, Any], **kwargs: Any
) -> list[Workflow]:
    """`event_published` receiver: start each enabled automation the event matches."""
    if event["type"] in REFUSED_EVENTS:
        return []
    automations = Automation.objects.for_tenant(tenant).filter(
        event_type=event["type"], enabled=True
    )
    started = []
    for automation in automations:
        if not holds(automation.conditions, event):
            continue
        workflow = start_automation(automation, event)
        if workflow is not None:
            started.append(workflow)
    return started


@transaction.atomic
def start_automation(automation: Automation, event: dict[str, Any]) -> Workflow | None:
    """Start the automation's workflow for `event`; None if this event already started it."""
    try:
        with transaction.atomic():
            start = AutomationStart.objects.create(
                automation=automation,
                tenant_id=automation.tenant_id,
                event_key=event_key(event),
                event_type=event["type"],
                event_id=str(event.get("id", ""))[:64],
            )
    except IntegrityError:
        logger.info("automation=%s: event %s started it already", automation.pk, event.get("id"))
        return None
    workflow = start_workflow(
        tenant=automation.tenant,
        name=automation.workflow_name,
        steps=automation.steps,
        input=event.get("data") or {},
        automation=automation,
    )
    start.workflow = workflow
    start.save(update_fields=["workflow"])
    Automation.objects.filter(pk=automation.pk).update(
        start_count=F("start_count") + 1, last_started_at=timezone.now()
    )
    return workflow
