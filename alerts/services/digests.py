"""The daily digest: per tenant that asked, the last day's jobs, failures by kind and the
dead letters waiting, emailed to each subscribed member through the email queue."""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from alerts.models import DigestSubscription
from communications.models import Channel
from communications.services.messages import send_message
from jobs.models import Job
from tenants.models import Membership, Tenant

logger = logging.getLogger(__name__)


def digest_figures(tenant: Tenant, *, until: datetime) -> dict[str, Any]:
    """The tenant's last 24 hours: jobs ended, failures by kind, dead letters waiting now."""
    since = until - timedelta(days=1)
    ended = Job.objects.for_tenant(tenant).filter(finished_at__gte=since, finished_at__lt=until)
    counts = ended.aggregate(
        ran=Count("pk"),
        succeeded=Count("pk", filter=Q(status=Job.Status.SUCCEEDED)),
        failed=Count("pk", filter=Q(status=Job.Status.FAILED)),
    )
    by_kind = (
        ended.filter(status=Job.Status.FAILED)
        .values("kind")
        .annotate(n=Count("pk"))
        .order_by("-n", "kind")
    )
    dead = Job.objects.for_tenant(tenant).filter(status=Job.Status.FAILED).count()
    return {
        **counts,
        "failures_by_kind": {row["kind"]: row["n"] for row in by_kind},
        "dead_letters_waiting": dead,
        "since": since,
        "until": until,
    }


def digest_text(tenant: Tenant, figures: dict[str, Any]) -> tuple[str, str]:
    subject = f"Conveyor daily digest: {tenant.name}"
    lines = [
        f"{tenant.name}, {figures['since']:%Y-%m-%d %H:%M} to {figures['until']:%Y-%m-%d %H:%M}"
        " UTC",
        "",
        f"Jobs run: {figures['ran']:,} ({figures['succeeded']:,} succeeded, "
        f"{figures['failed']:,} failed)",
        f"Dead letters waiting: {figures['dead_letters_waiting']:,}",
    ]
    if figures["failures_by_kind"]:
        lines += ["", "Failures by kind:"]
        lines += [f"  {kind}: {n:,}" for kind, n in figures["failures_by_kind"].items()]
    return subject, "\n".join(lines)


def send_digests(*, until: datetime | None = None) -> int:
    """Email every subscribed, still-member user their tenant's digest; returns emails queued."""
    until = until or timezone.now()
    queued = 0
    tenant_ids = DigestSubscription.objects.values_list("tenant", flat=True).distinct()
    for tenant in Tenant.objects.filter(pk__in=tenant_ids, is_active=True).order_by("pk"):
        subject, text = digest_text(tenant, digest_figures(tenant, until=until))
        for email in _subscribed_addresses(tenant):
            try:
                with transaction.atomic():
                    send_message(
                        tenant=tenant,
                        channel=Channel.EMAIL,
                        recipient=email,
                        subject=subject,
                        text=text,
                    )
            except ValidationError as error:
                logger.warning("tenant=%s digest to %s not queued: %s", tenant.pk, email, error)
                continue
            queued += 1
    return queued


def _subscribed_addresses(tenant: Tenant) -> list[str]:
    # Only current, active members: a subscription outlives a membership in no one's inbox.
    members = Membership.objects.for_tenant(tenant).filter(user__is_active=True)
    subscribed = DigestSubscription.objects.for_tenant(tenant).filter(
        user__in=members.values("user")
    )
    return sorted({s.user.email for s in subscribed.select_related("user") if s.user.email})


def subscribe(*, tenant: Tenant, user: Any) -> DigestSubscription:
    """Opt the member in to the tenant's daily digest (again: no change)."""
    if not Membership.objects.for_tenant(tenant).filter(user=user).exists():
        raise ValidationError({"user": ["Only members of the tenant get its digest."]})
    subscription, _ = DigestSubscription.objects.get_or_create(tenant=tenant, user=user)
    return subscription


def unsubscribe(*, tenant: Tenant, user: Any) -> int:
    """Opt the member out; returns how many subscriptions were removed (0 or 1)."""
    deleted, _ = DigestSubscription.objects.for_tenant(tenant).filter(user=user).delete()
    return deleted
