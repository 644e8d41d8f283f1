"""Notify users: a stored in-app notification, and optionally an email from a template.

Notifications are written by jobs on the `notifications` queue (`communications.notify_user`,
`communications.notify_members`), never in the caller's transaction: the caller only enqueues.
"""

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from communications.models import Contact, Notification
from communications.services.messages import send_template_email
from communications.template_engine import user_variables
from jobs.models import Job
from jobs.services.jobs import enqueue_job
from tenants.models import Membership, Role, Tenant

logger = logging.getLogger(__name__)


NOTIFY_USER_KIND = "communications.notify_user"
NOTIFY_MEMBERS_KIND = "communications.notify_members"


@dataclass(frozen=True)
class Notice:
    """What a notification says, and the email (a template name) that goes with it."""

    title: str
    body: str = ""
    link: str = ""
    email_template: str = ""
    variables: dict[str, Any] = field(default_factory=dict)  # the email's, beyond user etc.

    def payload(self) -> dict[str, Any]:
        return {
            "title": self.title[:200],
            "body": self.body,
            "link": self.link,
            "email_template": self.email_template,
            "variables": self.variables,
        }


def absolute_url(path: str) -> str:
    """`path` on this deployment (CONVEYOR_PUBLIC_URL), for links in emails."""
    return f"{settings.CONVEYOR_PUBLIC_URL}{path}"


def notify_user(
    user: User,
    *,
    tenant: Tenant,
    title: str,
    body: str = "",
    link: str = "",
    email_template: str = "",
    context: dict[str, Any] | None = None,
) -> Job:
    """Queue a job on `notifications` that stores an in-app notification for `user` and, with
    `email_template`, queues that email. Inside a transaction it is handed over on commit."""
    notice = Notice(title, body, link, email_template, context or {})
    return enqueue_job(
        tenant=tenant,
        kind=NOTIFY_USER_KIND,
        payload={"user_id": user.pk, **notice.payload()},
    )


def notify_members(
    tenant: Tenant,
    *,
    min_role: str = Role.VIEWER,
    title: str,
    body: str = "",
    link: str = "",
    email_template: str = "",
    context: dict[str, Any] | None = None,
) -> Job:
    """Queue a job that notifies every active member of `tenant` whose role is `min_role` or
    above, in batches of CONVEYOR_NOTIFY_BATCH_SIZE."""
    notice = Notice(title, body, link, email_template, context or {})
    return enqueue_job(
        tenant=tenant,
        kind=NOTIFY_MEMBERS_KIND,
        payload={"min_role": min_role, **notice.payload()},
    )


@transaction.atomic
def create_notifications(
    users: Iterable[User], *, tenant: Tenant, notice: Notice, job: Job | None = None
) -> list[Notification]:
    """Store the notice for each user that its job has not notified yet, and queue their
    emails; a retry of the job notifies nobody twice (one row per job and user)."""
    users = list(users)
    done = set(
        Notification.objects.filter(job=job, user__in=users).values_list("user_id", flat=True)
        if job is not None
        else ()
    )
    created = Notification.objects.bulk_create(
        [
            Notification(
                tenant=tenant,
                user=user,
                job=job,
                title=notice.title[:200],
                body=notice.body,
                link=notice.link,
            )
            for user in users
            if user.pk not in done
        ]
    )
    for notification in created:
        if notice.email_template and notification.user.email:
            _queue_email(notification, template=notice.email_template, context=notice.variables)
    return created


def member_batches(tenant: Tenant, *, min_role: str, size: int) -> Iterator[list[User]]:
    """The active members at or above `min_role`, in batches of `size`, in id order."""
    users = (
        User.objects.filter(
            is_active=True,
            memberships__tenant=tenant,
            memberships__role__in=Role.at_least(min_role),
        )
        .order_by("pk")
        .distinct()
    )
    batch: list[User] = []
    for user in users.iterator(chunk_size=size):
        batch.append(user)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


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


# --- What notifies by itself --------------------------------------------------------------------


def welcome_member(membership: Membership, **_: Any) -> None:
    """Receiver of `tenants.signals.member_added`: the new member gets the `welcome` email."""
    tenant = membership.tenant
    notify_user(
        membership.user,
        tenant=tenant,
        title=f"Welcome to {tenant.name}",
        link=absolute_url(reverse("admin:index")),
        email_template="welcome",
        context={"action_url": absolute_url(reverse("admin:index"))},
    )


def announce_contact(contact: Contact, *, by: User | None) -> Job | None:
    """Tell the members the tenant chose (`contact_created_notify`) about a new contact."""
    tenant = contact.tenant
    if not tenant.contact_created_notify:
        return None
    url = absolute_url(reverse("admin:communications_contact_change", args=[contact.pk]))
    creator = (by.get_full_name() or by.get_username()) if by is not None else ""
    return notify_members(
        tenant,
        min_role=tenant.contact_created_notify,
        title=f"New contact: {contact.name or contact.email or contact.phone}"[:200],
        link=url,
        email_template="contact-created",
        context={
            "contact": {
                "name": contact.name,
                "email": contact.email,
                "phone": contact.phone,
                "company": contact.company,
                "tags": contact.tags,
            },
            "created_by": creator,
            "contact_url": url,
        },
    )
