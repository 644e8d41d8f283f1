"""The kind that records delivery receipts a provider posted (accepted by the receipt view)."""

from rest_framework import serializers

from communications.models import Sender
from communications.services.receipts import RECORD_KIND, record_receipts
from jobs.kinds import job_kind
from jobs.runtime.context import JobContext


class ReceiptsPayload(serializers.Serializer):
    sender_id = serializers.UUIDField()
    receipts = serializers.ListField(child=serializers.DictField(), max_length=1000)


@job_kind(RECORD_KIND, queue="messaging", max_attempts=5, payload=ReceiptsPayload)
def record_receipts_kind(
    ctx: JobContext, *, sender_id: str, receipts: list[dict]
) -> dict[str, int]:
    """Add each receipt to its message's timeline; opt out contacts who asked."""
    sender = Sender.objects.select_related("tenant").get(tenant=ctx.tenant, pk=sender_id)
    return record_receipts(sender=sender, receipts=receipts)  # type: ignore[arg-type]
