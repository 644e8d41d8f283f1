"""Kinds that write notifications, on the `notifications` queue: one user, or a tenant's
members by role in batches."""

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from rest_framework import serializers

from communications.services.notifications import (
    NOTIFY_MEMBERS_KIND,
    NOTIFY_USER_KIND,
    Notice,
    create_notifications,
    member_batches,
)
from jobs.kinds import job_kind
from jobs.runtime.context import JobContext
from tenants.models import Role


class NoticePayload(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    body = serializers.CharField(allow_blank=True, default="")
    link = serializers.CharField(max_length=500, allow_blank=True, default="")
    email_template = serializers.CharField(max_length=100, allow_blank=True, default="")
    variables = serializers.DictField(default=dict)


class UserNoticePayload(NoticePayload):
    user_id = serializers.IntegerField(min_value=1)


class MembersNoticePayload(NoticePayload):
    min_role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


@job_kind(NOTIFY_USER_KIND, queue="notifications", payload=UserNoticePayload)
def notify_user(ctx: JobContext, *, user_id: int, **notice: Any) -> dict[str, int]:
    """Store one user's notification and queue its email; a user since deleted gets none."""
    users = User.objects.filter(pk=user_id, is_active=True)
    created = create_notifications(users, tenant=ctx.tenant, notice=Notice(**notice), job=ctx.job)
    return {"notified": len(created)}


@job_kind(NOTIFY_MEMBERS_KIND, queue="notifications", timeout=600, payload=MembersNoticePayload)
def notify_members(ctx: JobContext, *, min_role: str, **notice: Any) -> dict[str, int]:
    """Notify the tenant's members at or above `min_role`, a batch at a time."""
    size = settings.CONVEYOR_NOTIFY_BATCH_SIZE
    notified = 0
    for batch in member_batches(ctx.tenant, min_role=min_role, size=size):
        ctx.stop_if_canceled()
        created = create_notifications(
            batch, tenant=ctx.tenant, notice=Notice(**notice), job=ctx.job
        )
        notified += len(created)
        ctx.progress(0, f"{notified:,} notified")
    return {"notified": notified}
