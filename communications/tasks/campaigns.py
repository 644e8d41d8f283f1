"""Kinds of campaigns: launch (snapshot the audience, split it into batches), send a batch,
finish. A person starts a campaign (`communications.services.campaigns.start_campaign`); its
launch job, batch jobs and finishing callback run the rest."""

from collections import Counter
from typing import Any

from django.conf import settings
from rest_framework import serializers

from communications.models import Campaign
from communications.secrets import UnreadableSecret
from communications.services import campaigns
from communications.services.messages import channel_rate, relaxed_commits
from communications.services.senders import Route, route_for
from jobs.errors import RetryableError
from jobs.kinds import job_kind
from jobs.runtime.context import JobContext


class CampaignPayload(serializers.Serializer):
    campaign_id = serializers.IntegerField(min_value=1)


class BatchPayload(CampaignPayload):
    first_id = serializers.IntegerField(min_value=1, help_text="First message id of the batch.")
    last_id = serializers.IntegerField(min_value=1, help_text="Last message id of the batch.")


@job_kind(
    campaigns.LAUNCH_KIND,
    queue="messaging",
    timeout=1800,
    max_attempts=3,
    payload=CampaignPayload,
    aliases=("communications.start_campaign",),
)
def launch_campaign(ctx: JobContext, *, campaign_id: int) -> dict[str, Any]:
    """Snapshot the campaign's recipients and enqueue their batch jobs, once."""
    campaign = Campaign.objects.get(tenant=ctx.tenant, pk=campaign_id)
    batches = campaigns.launch_campaign(campaign, job=ctx.job)
    return {"campaign_id": campaign.pk, "batches": batches}


@job_kind(
    campaigns.BATCH_KIND,
    queue="messaging",
    timeout=3600,
    max_attempts=5,
    payload=BatchPayload,
)
def send_campaign_batch(
    ctx: JobContext, *, campaign_id: int, first_id: int, last_id: int
) -> dict[str, int]:
    """Send the campaign to each recipient of the batch once, rate limited; stops on cancel."""
    campaign = Campaign.objects.select_related("tenant").get(tenant=ctx.tenant, pk=campaign_id)
    messages = campaigns.batch_messages(campaign, first_id=first_id, last_id=last_id)
    template = campaigns.campaign_template(campaign)
    rate = channel_rate(ctx.tenant, campaign.channel)
    route = batch_route(campaign)
    final = ctx.attempt >= ctx.job.max_attempts
    window = settings.CONVEYOR_CAMPAIGN_SEND_CONCURRENCY
    tally: Counter[str] = Counter()
    to_retry = 0
    delays: list[float] = []  # what the provider asked for (Retry-After), when it did
    with relaxed_commits():
        for start in range(0, len(messages), window):
            ctx.stop_if_canceled()
            outcomes = campaigns.send_to_recipients(
                campaign,
                messages[start : start + window],
                template=template,
                job=ctx.job,
                rate=rate,
                final=final,
                route=route,
                concurrency=window,
            )
            for outcome in outcomes:
                tally[outcome.status] += 1
                if outcome.to_retry:
                    to_retry += 1
                    if outcome.retry_delay is not None:
                        delays.append(outcome.retry_delay)
            done = min(start + window, len(messages))
            ctx.progress(done * 100 // len(messages), f"{done:,} of {len(messages):,} recipients")
    if to_retry:
        delay = max(delays) if delays else None  # None: the kind's backoff with jitter
        raise RetryableError(f"{to_retry} recipient(s) to try again", delay=delay)
    return dict(tally)


def batch_route(campaign: Campaign) -> Route | None:
    """The batch's sender, looked up once; None lets each message record why it cannot send."""
    try:
        return route_for(campaign.tenant, campaign.channel)
    except UnreadableSecret:
        return None


@job_kind(
    campaigns.FINISH_KIND,
    queue="messaging",
    timeout=300,
    max_attempts=5,
    payload=CampaignPayload,
)
def finish_campaign(ctx: JobContext, *, campaign_id: int, **batch: Any) -> dict[str, Any]:
    """The campaign's batch callback: final totals, campaign.finished, the creator notified."""
    campaign = campaigns.finish_campaign(Campaign.objects.get(tenant=ctx.tenant, pk=campaign_id))
    return {"campaign_id": campaign.pk, "status": campaign.status, "sent": campaign.sent}
