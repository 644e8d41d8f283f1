"""Reads of campaigns: the tenant's campaigns and their live totals, counted from messages."""

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Count, QuerySet

from communications.models import Campaign, Message
from tenants.models import Tenant

TOTAL_KEYS = ("recipients", "sent", "failed", "skipped", "canceled", "pending")
# Receipts arrive after a campaign ends, so these are always counted from its messages.
RECEIPT_KEYS = ("delivered", "read", "bounced", "complained")


def list_campaigns(*, tenant: Tenant, status: str = "", channel: str = "") -> QuerySet[Campaign]:
    campaigns = Campaign.objects.for_tenant(tenant)
    if status:
        campaigns = campaigns.filter(status=status)
    if channel:
        campaigns = campaigns.filter(channel=channel)
    return campaigns.select_related("created_by", "job").order_by("-created_at", "-id")


def get_campaign(*, tenant: Tenant, campaign_id: int) -> Campaign:
    """The tenant's campaign; another tenant's raises DoesNotExist like a missing one."""
    return list_campaigns(tenant=tenant).get(pk=campaign_id)


def _totals(counts: dict[str, int]) -> dict[str, int]:
    pending = counts.get(Message.Status.QUEUED, 0) + counts.get(Message.Status.SENDING, 0)
    totals = {
        "sent": counts.get(Message.Status.SENT, 0),
        "failed": counts.get(Message.Status.FAILED, 0),
        "skipped": counts.get(Message.Status.SKIPPED, 0),
        "canceled": counts.get(Message.Status.CANCELED, 0),
        "pending": pending,
    }
    totals["recipients"] = sum(totals.values())
    return totals


def campaign_totals(campaign: Campaign) -> dict[str, int]:
    """Recipients by outcome, counted now in one grouped query: sent, failed, skipped,
    canceled, pending (queued or being sent) and their sum, recipients."""
    return campaigns_totals([campaign])[campaign.pk]


def campaigns_totals(campaigns: Iterable[Campaign]) -> dict[int, dict[str, int]]:
    """Totals of several campaigns in one grouped query: outcomes live for those still running
    (stored for ended ones), and receipts (always live: they arrive after the end)."""
    campaigns = list(campaigns)
    if not campaigns:
        return {}
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    receipts = {c.pk: dict.fromkeys(RECEIPT_KEYS, 0) for c in campaigns}
    rows = (
        Message.objects.filter(campaign_id__in=[c.pk for c in campaigns])
        .values_list("campaign_id", "status", "delivery_status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for campaign_id, status, delivery, n in rows:
        counts[campaign_id][status] = counts[campaign_id].get(status, 0) + n
        if delivery in RECEIPT_KEYS:
            receipts[campaign_id][delivery] += n
        if delivery == Message.Delivery.READ:
            receipts[campaign_id]["delivered"] += n  # read implies delivered
    return {
        c.pk: {**(_stored(c) if c.finished_at else _totals(counts[c.pk])), **receipts[c.pk]}
        for c in campaigns
    }


def _stored(campaign: Campaign) -> dict[str, int]:
    return {
        "recipients": campaign.recipients,
        "sent": campaign.sent,
        "failed": campaign.failed,
        "skipped": campaign.skipped,
        "canceled": campaign.canceled,
        "pending": 0,
    }
