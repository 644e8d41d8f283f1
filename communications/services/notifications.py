"""Notify users: a stored in-app notification, and optionally an email from a template."""

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from communications.models import Notification
from tenants.models import Membership, Role, Tenant


@transaction.atomic
def notify_user(
    user: User,
    *,
    tenant: Tenant,
    title: str,
    body: str = "",
    link: str = "",
    email_template: str = "",
    context: dict[str, Any] | None = None,
) -> Notification:
    """Store an in-app notification for `user`; with `email_template`, also queue that email."""
    notification = Notification.objects.create(
        tenant=tenant, user=user, title=title[:200], body=body, link=link
    )
    if email_template and user.email:
        _queue_email(notification, template=email_template, context=context or {})
    return notification


def notify_members(
    tenant: Tenant,
    *,
    min_role: str = Role.VIEWER,
    title: str,
    body: str = "",
    link: str = "",
    email_template: str = "",
    context: dict[str, Any] | None = None,
) -> list[Notification]:
    """Notify every active member of `tenant` whose role is `min_role` or above."""
    return [
        notify_user(
            user,
            tenant=tenant,
            title=title,
            body=body,
            link=link,
            email_template=email_template,
            context=context,
        )
        for user in _members(tenant, min_role=min_role)
    ]


def _members(tenant: Tenant, *, min_role: str) -> Iterable[User]:
    memberships = Membership.objects.for_tenant(tenant).filter(
        role__in=Role.at_least(min_role), user__is_active=True
    )
    return [membership.user for membership in memberships.select_related("user")]


def _queue_email(notification: Notification, *, template: str, context: dict[str, Any]) -> None:
    """Queue the template's email to the notified user (see communications.services.messages)."""
    from communications.services.messages import send_template_email  # noqa: PLC0415

    send_template_email(
        tenant=notification.tenant,
        to=notification.user.email,
        template=template,
        context={"user": notification.user, "notification": notification, **context},
    )
