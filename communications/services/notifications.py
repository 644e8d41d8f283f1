"""Notify users: a stored in-app notification, and optionally an email from a template."""

import logging
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from communications.models import Notification
from communications.services.messages import send_template_email
from communications.template_engine import user_variables
from tenants.models import Membership, Role, Tenant

logger = logging.getLogger(__name__)


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


def mark_read(notification: Notification) -> Notification:
    """Mark the notification read; reading it again keeps the first read time."""
    now = timezone.now()
    marked = Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(
        read_at=now
    )
    if marked:
        notification.read_at = now
    else:
        notification.refresh_from_db(fields=["read_at"])
    return notification


def mark_all_read(*, tenant: Tenant, user: User) -> int:
    """Mark every unread notification of the user in the tenant read; returns how many."""
    unread = Notification.objects.for_tenant(tenant).filter(user=user, read_at__isnull=True)
    return unread.update(read_at=timezone.now())


def _members(tenant: Tenant, *, min_role: str) -> Iterable[User]:
    memberships = Membership.objects.for_tenant(tenant).filter(
        role__in=Role.at_least(min_role), user__is_active=True
    )
    return [membership.user for membership in memberships.select_related("user")]


def _queue_email(notification: Notification, *, template: str, context: dict[str, Any]) -> None:
    """Queue the template's email to the notified user (see communications.services.messages)."""
    variables = {
        "user": user_variables(notification.user),
        "notification": {
            "title": notification.title,
            "body": notification.body,
            "link": notification.link,
        },
        **context,
    }
    try:
        with transaction.atomic():
            send_template_email(
                tenant=notification.tenant,
                to=notification.user.email,
                template=template,
                context=variables,
            )
    except ValidationError as error:
        # A template that cannot render (or an address the provider refuses) must not cost
        # the user the in-app notification: it is kept, and the email is logged as not sent.
        logger.warning(
            "Notification %s of tenant %s: email %r not queued: %s",
            notification.pk,
            notification.tenant.slug,
            template,
            error,
        )
