"""Incidents: opened when a rule's condition holds, escalated, acknowledged, silenced, resolved.

`evaluate_rules` runs after each scheduled health check (`jobs.signals.health_checked`):

1. a firing rule with no open incident opens one, unless the rule is silenced or its cooldown
   since the last resolution lasts; level 0 is told;
2. a firing rule whose open incident is unacknowledged, not silenced and older than
   `escalate_after_minutes` (since it opened or last escalated) tells the next level, if the
   rule has recipients there;
3. a rule no longer firing resolves its open incident and tells everyone who was told.

Nothing else is sent while an incident stays open. The check's advisory lock makes one
evaluation at a time; each rule is evaluated in its own savepoint, so a broken rule is logged
and the others go on.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from alerts.models import AlertNotice, AlertRule, Incident
from alerts.selectors import Finding, find, last_resolved_at
from alerts.services.notices import has_level, send_notices, targets_at, told
from alerts.services.rules import ensure_builtin_rules
from jobs.models import HealthCheck
from tenants.users import Actor, acting_user

logger = logging.getLogger(__name__)


@dataclass
class Evaluation:
    opened: int = 0
    escalated: int = 0
    resolved: int = 0
    failed: int = 0


def evaluate_rules(check: HealthCheck) -> Evaluation:
    """Evaluate every enabled rule against `check`; returns what changed."""
    ensure_builtin_rules()
    outcome = Evaluation()
    # An inactive tenant's rules rest: its jobs cannot run and its notices could not be sent.
    live = Q(tenant__isnull=True) | Q(tenant__is_active=True)
    rules = AlertRule.objects.filter(live, enabled=True).select_related("tenant").order_by("pk")
    for rule in rules:
        try:
            with transaction.atomic():
                _apply(rule, find(rule, check), now=check.checked_at, outcome=outcome)
        except Exception:
            outcome.failed += 1
            logger.exception("alert rule %s could not be evaluated", rule.pk)
    return outcome


def on_health_checked(sender: object, *, check: HealthCheck, **kwargs: object) -> None:
    """The receiver of `jobs.signals.health_checked`."""
    evaluate_rules(check)


def _apply(rule: AlertRule, finding: Finding, *, now: datetime, outcome: Evaluation) -> None:
    incident = Incident.objects.filter(rule=rule, status=Incident.Status.OPEN).first()
    if finding.firing is None:
        return
    if not finding.firing:
        if incident is not None:
            resolve_incident(incident, now=now)
            outcome.resolved += 1
        return
    if incident is None:
        if _may_open(rule, now=now) and open_incident(rule, finding, now=now):
            outcome.opened += 1
        return
    Incident.objects.filter(pk=incident.pk).update(
        last_seen_at=now, summary=finding.summary[:500], figures=finding.figures
    )
    if _escalation_due(incident, now=now) and escalate_incident(incident, now=now):
        outcome.escalated += 1


def _may_open(rule: AlertRule, *, now: datetime) -> bool:
    if rule.silenced_until and rule.silenced_until > now:
        return False
    resolved = last_resolved_at(rule)
    return resolved is None or resolved + timedelta(minutes=rule.cooldown_minutes) <= now


def open_incident(rule: AlertRule, finding: Finding, *, now: datetime) -> Incident | None:
    """Open the rule's incident and tell level 0; None if one is open already."""
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                rule=rule,
                tenant=rule.tenant,
                summary=finding.summary[:500],
                figures=finding.figures,
                opened_at=now,
                last_seen_at=now,
            )
    except IntegrityError:
        return None  # the one-open-incident constraint: another evaluation opened it
    logger.warning("alert rule=%s tenant=%s opened: %s", rule.pk, rule.tenant_id, finding.summary)
    send_notices(incident, AlertNotice.Event.OPENED, targets_at(rule, 0))
    return incident


def _escalation_due(incident: Incident, *, now: datetime) -> bool:
    after = incident.rule.escalate_after_minutes
    if after is None or incident.acknowledged_at is not None:
        return False
    if incident.silenced_until and incident.silenced_until > now:
        return False
    since = incident.escalated_at or incident.opened_at
    return since + timedelta(minutes=after) <= now


def escalate_incident(incident: Incident, *, now: datetime) -> bool:
    """Tell the next level's recipients; False when the rule has no further level."""
    level = incident.level + 1
    if not has_level(incident.rule, level):
        return False
    incident.level, incident.escalated_at = level, now
    incident.save(update_fields=["level", "escalated_at"])
    logger.warning("alert incident=%s escalated to level %s", incident.pk, level)
    send_notices(incident, AlertNotice.Event.ESCALATED, targets_at(incident.rule, level))
    return True


def resolve_incident(incident: Incident, *, now: datetime) -> Incident:
    """Close the incident and tell everyone who was told of it."""
    incident.status, incident.resolved_at = Incident.Status.RESOLVED, now
    incident.save(update_fields=["status", "resolved_at"])
    logger.info("alert incident=%s resolved", incident.pk)
    send_notices(incident, AlertNotice.Event.RESOLVED, told(incident))
    return incident


def acknowledge_incident(incident: Incident, *, by: Actor = None) -> Incident:
    """Someone is on it: no escalation. Acknowledging again keeps the first time."""
    updated = Incident.objects.filter(pk=incident.pk, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now(), acknowledged_by=acting_user(by)
    )
    incident.refresh_from_db(fields=["acknowledged_at", "acknowledged_by"])
    if updated:
        logger.info("alert incident=%s acknowledged by %s", incident.pk, acting_user(by))
    return incident


def silence_incident(incident: Incident, *, until: datetime, by: Actor = None) -> Incident:
    """No escalation of the incident before `until`; it still resolves and says so."""
    Incident.objects.filter(pk=incident.pk).update(silenced_until=until)
    incident.silenced_until = until
    logger.info("alert incident=%s silenced until %s by %s", incident.pk, until, acting_user(by))
    return incident
