"""Telling people about an incident: who a rule tells at each level, and one notice each.

Every notice is a row first (`AlertNotice`, unique per incident, event and recipient), so a
recipient hears of each event of an incident once however often it is evaluated. What the row
sends goes through the existing paths, each a job: an email on the email queue, an in-app
notification on the notifications queue, a Slack post on the webhooks queue, signed webhook
events to the tenant's subscribed endpoints. A tenant rule's notices go only to that tenant's
current members and endpoints; a platform rule's to superusers and the system tenant's.
"""

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse

from alerts.models import AlertNotice, AlertRule, Channel, Incident
from communications.models import Channel as MessageChannel
from communications.services.events import publish_event
from communications.services.messages import send_message
from communications.services.notifications import notify_user
from jobs.services.jobs import enqueue_job
from jobs.services.schedules import SYSTEM_TENANT_SLUG
from tenants.models import Membership, Role, Tenant

logger = logging.getLogger(__name__)

POST_SLACK_KIND = "alerts.post_slack"
TITLES: dict[str, str] = {
    AlertNotice.Event.OPENED: "Alert",
    AlertNotice.Event.ESCALATED: "Alert escalated",
    AlertNotice.Event.RESOLVED: "Resolved",
}


@dataclass(frozen=True)
class Target:
    """One recipient: a user on a channel, a Slack URL, or the tenant's webhook endpoints."""

    channel: str
    user_id: int | None = None
    url: str = ""


def notice_tenant(rule: AlertRule) -> Tenant:
    """Whose notifications, emails and endpoints carry the rule's notices."""
    if rule.tenant is not None:
        return rule.tenant
    tenant, _ = Tenant.objects.get_or_create(slug=SYSTEM_TENANT_SLUG, defaults={"name": "System"})
    return tenant


def targets_at(rule: AlertRule, level: int) -> list[Target]:
    """Who is told when an incident of `rule` reaches `level` (0 on opening)."""
    targets: list[Target] = []
    if rule.publish_webhooks:
        targets.append(Target(Channel.WEBHOOK))
    if level == 0 and rule.notify_admins:
        for user_id in _admin_ids(rule):
            targets += [Target(Channel.EMAIL, user_id), Target(Channel.IN_APP, user_id)]
    for recipient in rule.recipients.filter(level=level):
        targets.append(Target(recipient.channel, recipient.user_id, recipient.url))
    return list(dict.fromkeys(targets))


def has_level(rule: AlertRule, level: int) -> bool:
    return rule.recipients.filter(level=level).exists()


def told(incident: Incident) -> list[Target]:
    """Everyone told of the incident so far: whom its resolution goes to."""
    sent = incident.notices.exclude(event=AlertNotice.Event.RESOLVED).order_by("pk")
    return list(
        dict.fromkeys(Target(n.channel, n.user_id, n.url) for n in sent)  # keeps the order
    )


def allowed_user_ids(rule: AlertRule) -> set[int]:
    """Users a rule may tell: the tenant's active members, or active superusers."""
    if rule.tenant_id is None:
        return set(
            User.objects.filter(is_superuser=True, is_active=True).values_list("pk", flat=True)
        )
    members = Membership.objects.filter(tenant=rule.tenant_id, user__is_active=True)
    return set(members.values_list("user_id", flat=True))


def _admin_ids(rule: AlertRule) -> list[int]:
    if rule.tenant_id is None:
        superusers = User.objects.filter(is_superuser=True, is_active=True).order_by("pk")
        return list(superusers.values_list("pk", flat=True))
    admins = Membership.objects.filter(
        tenant=rule.tenant_id, role__in=Role.at_least(Role.ADMIN), user__is_active=True
    )
    return list(admins.order_by("user_id").values_list("user_id", flat=True))


@transaction.atomic
def send_notices(incident: Incident, event: str, targets: list[Target]) -> list[AlertNotice]:
    """One notice per target not yet told of `event`; each goes out through its channel."""
    rule = incident.rule
    tenant = notice_tenant(rule)
    allowed = allowed_user_ids(rule)
    sent = []
    for target in targets:
        if target.user_id is not None and target.user_id not in allowed:
            logger.warning(
                "incident=%s rule=%s: user %s may not be told (not a member), skipped",
                incident.pk,
                rule.pk,
                target.user_id,
            )
            continue
        identity: dict[str, Any] = {"channel": target.channel, "url": target.url}
        identity["user_id"] = target.user_id
        notice, created = AlertNotice.objects.get_or_create(
            incident=incident, event=event, **identity, defaults={"tenant": tenant}
        )
        if created:
            _dispatch(notice, incident=incident, tenant=tenant)
            sent.append(notice)
    return sent


def _dispatch(notice: AlertNotice, *, incident: Incident, tenant: Tenant) -> None:
    title, body = describe(incident, notice.event)
    if notice.channel == Channel.WEBHOOK:
        publish_event(tenant, f"alert.{notice.event}", event_data(incident))
    elif notice.channel == Channel.IN_APP and notice.user is not None:
        link = incident_link(incident)
        notice.job = notify_user(notice.user, tenant=tenant, title=title, body=body, link=link)
        notice.save(update_fields=["job"])
    elif notice.channel == Channel.EMAIL:
        _email(notice, tenant=tenant, title=title, body=body)
    elif notice.channel == Channel.SLACK:
        notice.job = enqueue_job(
            tenant=tenant,
            kind=POST_SLACK_KIND,
            payload={"notice_id": notice.pk},
            idempotency_key=f"alert-notice:{notice.pk}",
        )
        notice.save(update_fields=["job"])


def _email(notice: AlertNotice, *, tenant: Tenant, title: str, body: str) -> None:
    user = notice.user
    if user is None or not user.email:
        logger.warning("alert notice %s: user %s has no email address", notice.pk, notice.user_id)
        return
    try:
        with transaction.atomic():
            message = send_message(
                tenant=tenant,
                channel=MessageChannel.EMAIL,
                recipient=user.email,
                subject=title,
                text=body,
            )
    except ValidationError as error:
        logger.warning("alert notice %s: email not queued: %s", notice.pk, error)
        return
    notice.job = message.job
    notice.save(update_fields=["job"])


def describe(incident: Incident, event: str) -> tuple[str, str]:
    """A notice's title and plain-text body."""
    rule = incident.rule
    scope = rule.tenant.name if rule.tenant else "platform"
    title = f"{TITLES[event]}: {rule.name} ({scope})"
    lines = [incident.summary, "", f"Opened {incident.opened_at:%Y-%m-%d %H:%M:%S %Z}."]
    if event == AlertNotice.Event.ESCALATED:
        lines.append(f"Not acknowledged: escalated to level {incident.level}.")
    if event == AlertNotice.Event.RESOLVED and incident.resolved_at:
        lines.append(f"Resolved {incident.resolved_at:%Y-%m-%d %H:%M:%S %Z}.")
    lines += ["", incident_link(incident)]
    return title, "\n".join(lines)


def event_data(incident: Incident) -> dict[str, Any]:
    """The `data` of the alert.* webhook events and the Slack post's fields."""
    rule = incident.rule
    return {
        "incident_id": incident.pk,
        "rule": {"id": rule.pk, "name": rule.name, "condition": rule.condition},
        "status": incident.status,
        "summary": incident.summary,
        "figures": incident.figures,
        "level": incident.level,
        "opened_at": incident.opened_at,
        "acknowledged_at": incident.acknowledged_at,
        "resolved_at": incident.resolved_at,
    }


def incident_link(incident: Incident) -> str:
    path = reverse("admin:alerts_incident_change", args=[incident.pk])
    return settings.CONVEYOR_BASE_URL.rstrip("/") + path
