"""Reads of notifications: always one user's own, in one tenant."""

from django.contrib.auth.models import User
from django.db.models import QuerySet

from communications.models import Notification
from tenants.models import Tenant


def list_notifications(
    *, tenant: Tenant, user: User, unread: bool | None = None
) -> QuerySet[Notification]:
    """The user's notifications in the tenant, newest first; `unread` narrows to (un)read ones."""
    notifications = Notification.objects.for_tenant(tenant).filter(user=user)
    if unread is not None:
        notifications = notifications.filter(read_at__isnull=unread)
    return notifications.order_by("-created_at", "-id")


def get_notification(*, tenant: Tenant, user: User, pk: int) -> Notification:
    """The user's own notification; anyone else's raises DoesNotExist like a missing one."""
    return Notification.objects.for_tenant(tenant).get(user=user, pk=pk)


def count_unread(*, tenant: Tenant, user: User) -> int:
    return list_notifications(tenant=tenant, user=user, unread=True).count()
