"""Alert kinds: posting a notice to a Slack-compatible URL, and the daily digests."""

from typing import Any

from rest_framework import serializers

from alerts.models import AlertNotice, Incident
from alerts.services.digests import send_digests as send_all_digests
from alerts.services.notices import POST_SLACK_KIND, describe
from communications.webhook_sender import post_json
from jobs.errors import PermanentError, RetryableError
from jobs.kinds import job_kind
from jobs.runtime.context import JobContext


class PostSlackPayload(serializers.Serializer):
    notice_id = serializers.IntegerField()


@job_kind(POST_SLACK_KIND, queue="webhooks", max_attempts=5, payload=PostSlackPayload)
def post_slack(ctx: JobContext, *, notice_id: int) -> dict[str, Any]:
    """POST the notice as `{"text": …}`; 2xx succeeds, 429/5xx and network errors retry,
    other answers fail at once."""
    notice = AlertNotice.objects.select_related("incident__rule__tenant").get(
        tenant=ctx.tenant, pk=notice_id
    )
    incident: Incident = notice.incident
    title, body = describe(incident, notice.event)
    outcome = post_json(notice.url, {"text": f"*{title}*\n{body}"})
    if outcome.succeeded:
        return {"status_code": outcome.status_code}
    if outcome.permanent:
        raise PermanentError(f"{outcome.summary}: not retried.")
    raise RetryableError(outcome.summary or "Post failed.")


@job_kind("alerts.send_digests", queue="notifications", max_attempts=1)
def send_digests(ctx: JobContext) -> dict[str, Any]:
    """Email each tenant's daily digest to the members who asked for it."""
    return {"emails": send_all_digests()}
