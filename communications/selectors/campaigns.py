"""Reads of campaigns: the tenant's campaigns and their live totals, counted from messages."""

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Count, QuerySet

from communications.models import Campaign, Message
from tenants.models import Tenant

TOTAL_KEYS = ("recipients", "sent", "failed", "skipped", "canceled", "pending")


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
    """Totals of several campaigns: live for those still running, stored for ended ones."""
    campaigns = list(campaigns)
    live = [c.pk for c in campaigns if c.finished_at is None]
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    if live:
        rows = (
            Message.objects.filter(campaign_id__in=live)
            .values_list("campaign_id", "status")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for campaign_id, status, n in rows:
            counts[campaign_id][status] = n
    return {c.pk: _totals(counts[c.pk]) if c.pk in live else _stored(c) for c in campaigns}


def _stored(campaign: Campaign) -> dict[str, int]:
    return {
        "recipients": campaign.recipients,
        "sent": campaign.sent,
        "failed": campaign.failed,
        "skipped": campaign.skipped,
        "canceled": campaign.canceled,
        "pending": 0,
    }
