"""Alert rules: the built-in ones, and every write to a rule and its recipients.

`check_rule` is the one place a rule's fields are judged (the admin's forms and the API call
it): a tenant's rule may watch only its own jobs' figures and tell only its own members; a
Slack URL must pass the same SSRF check as webhook endpoints.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from alerts.models import TENANT_CONDITIONS, AlertRecipient, AlertRule, Channel, Condition
from communications.ssrf import UnsafeURL, check_url
from config.exceptions import DomainError
from tenants.models import Membership, Tenant
from tenants.users import Actor, acting_user

logger = logging.getLogger(__name__)

EDITABLE = (
    "name",
    "condition",
    "threshold",
    "window_minutes",
    "queue",
    "kind",
    "component",
    "min_jobs",
    "notify_admins",
    "publish_webhooks",
    "escalate_after_minutes",
    "cooldown_minutes",
    "enabled",
    "silenced_until",
)
COMPONENTS = ("database", "redis")


class RuleError(DomainError):
    """The rule cannot do what was asked: delete a built-in rule."""


@dataclass(frozen=True)
class BuiltIn:
    key: str
    name: str
    condition: str
    threshold: float = 0
    window_minutes: int = 15
    min_jobs: int = 5


BUILTIN_RULES = (
    BuiltIn("component_down", "PostgreSQL or Redis down", Condition.COMPONENT_DOWN),
    BuiltIn("no_worker", "A queue has work and no live worker", Condition.NO_WORKER),
    BuiltIn("oldest_waiting", "A job has waited over 10 minutes", Condition.OLDEST_WAITING, 600),
    BuiltIn(
        "failure_rate",
        "Over 25% of jobs failed in 15 minutes",
        Condition.FAILURE_RATE,
        0.25,
        min_jobs=20,
    ),
    BuiltIn("dead_letters", "100 dead letters in an hour", Condition.DEAD_LETTERS, 100, 60),
    BuiltIn(
        "tenant_wait_p95", "A tenant's wait p95 over 5 minutes", Condition.TENANT_WAIT_P95, 300
    ),
    BuiltIn("worker_memory", "A worker uses over 1 GB", Condition.WORKER_MEMORY, 1024),
    BuiltIn("disk_free", "A worker host has under 2 GB free", Condition.DISK_FREE, 2),
)


def ensure_builtin_rules() -> None:
    """Create the platform's built-in rules where missing (they may be edited or disabled)."""
    have = set(AlertRule.objects.exclude(builtin="").values_list("builtin", flat=True))
    for built_in in BUILTIN_RULES:
        if built_in.key in have:
            continue
        try:
            with transaction.atomic():
                AlertRule.objects.create(
                    builtin=built_in.key,
                    name=built_in.name,
                    condition=built_in.condition,
                    threshold=built_in.threshold,
                    window_minutes=built_in.window_minutes,
                    min_jobs=built_in.min_jobs,
                )
        except IntegrityError:
            continue  # another scheduler made it at the same moment


# --- Checks -------------------------------------------------------------------------------------


def check_rule(rule: AlertRule) -> None:
    """Raise ValidationError (by field) if the rule's fields do not make a rule it may have."""
    errors: dict[str, list[str]] = {}
    if rule.tenant_id is not None and rule.condition not in TENANT_CONDITIONS:
        allowed = ", ".join(str(c) for c in TENANT_CONDITIONS)
        errors["condition"] = [f"A tenant's rule watches its own jobs only: choose {allowed}."]
    if rule.queue and rule.queue not in settings.CONVEYOR_QUEUES:
        errors["queue"] = [f"There is no queue {rule.queue!r}."]
    if rule.component and rule.component not in COMPONENTS:
        errors["component"] = ["Choose database or redis, or leave it blank for either."]
    if rule.condition == Condition.FAILURE_RATE and not 0 <= rule.threshold < 1:
        errors["threshold"] = ["A failure rate is between 0 and 1 (0.25 is 25%)."]
    if rule.threshold < 0:
        errors["threshold"] = ["The threshold cannot be negative."]
    if rule.window_minutes < 1 or rule.window_minutes > 7 * 24 * 60:
        errors["window_minutes"] = ["Between 1 minute and 7 days."]
    if errors:
        raise ValidationError(errors)


def check_recipient(rule: AlertRule, recipient: AlertRecipient) -> None:
    """A user must be one the rule may tell; a Slack URL must be a public http(s) URL."""
    if recipient.channel == Channel.WEBHOOK:
        raise ValidationError(
            {"channel": ["Webhook events go to the tenant's endpoints: set publish_webhooks."]}
        )
    if recipient.channel == Channel.SLACK:
        if not recipient.url:
            raise ValidationError({"url": ["A Slack recipient needs its incoming-webhook URL."]})
        try:
            check_url(recipient.url)
        except UnsafeURL as error:
            raise ValidationError({"url": [str(error)]}) from None
        recipient.user = None
        return
    if recipient.user_id is None:
        raise ValidationError({"user": ["Email and in-app recipients are users."]})
    recipient.url = ""
    if rule.tenant_id is None:
        if not (recipient.user and recipient.user.is_superuser):
            raise ValidationError({"user": ["A platform rule tells superusers only."]})
    elif not Membership.objects.filter(tenant=rule.tenant_id, user=recipient.user_id).exists():
        raise ValidationError({"user": ["Only members of the rule's tenant may be told."]})


# --- Writes -------------------------------------------------------------------------------------


@transaction.atomic
def create_rule(
    *,
    tenant: Tenant | None,
    recipients: list[dict[str, Any]] | None = None,
    by: Actor = None,
    **fields: Any,
) -> AlertRule:
    """Save a checked rule and its recipients."""
    _editable(fields)
    rule = AlertRule(tenant=tenant, created_by=acting_user(by), **fields)
    check_rule(rule)
    rule.save()
    set_recipients(rule, recipients or [])
    logger.info("alert rule=%s tenant=%s created", rule.pk, rule.tenant_id)
    return rule


@transaction.atomic
def update_rule(
    rule: AlertRule, *, recipients: list[dict[str, Any]] | None = None, **changes: Any
) -> AlertRule:
    """Change a rule's fields (and replace its recipients when given), checked."""
    _editable(changes)
    for name, value in changes.items():
        setattr(rule, name, value)
    check_rule(rule)
    rule.save()
    if recipients is not None:
        set_recipients(rule, recipients)
    return rule


def set_recipients(rule: AlertRule, recipients: list[dict[str, Any]]) -> None:
    """Replace the rule's recipients with `recipients` (channel, level, user or url)."""
    made = []
    for index, given in enumerate(recipients):
        recipient = AlertRecipient(rule=rule, **given)
        try:
            check_recipient(rule, recipient)
        except ValidationError as error:
            raise ValidationError(
                {"recipients": [f"#{index}: {m}" for m in error.messages]}
            ) from None
        made.append(recipient)
    rule.recipients.all().delete()
    AlertRecipient.objects.bulk_create(made)


def delete_rule(rule: AlertRule) -> None:
    """Delete a rule and its incidents; built-in rules can only be disabled."""
    if rule.builtin:
        raise RuleError("A built-in rule cannot be deleted; disable it instead.")
    rule.delete()


def silence_rule(rule: AlertRule, *, until: datetime | None) -> AlertRule:
    """Open no incident of the rule before `until` (None: silence lifted)."""
    AlertRule.objects.filter(pk=rule.pk).update(silenced_until=until)
    rule.silenced_until = until
    return rule


def _editable(fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise TypeError(f"Not editable: {sorted(unknown)}")
