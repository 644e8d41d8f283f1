"""Notifications: notify one user or a tenant's members, the email they queue, and the API
that shows each user only their own."""

from typing import Any, cast

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse
from rest_framework.test import APIClient

from communications.models import Message, Notification
from communications.services.notifications import (
    Notice,
    create_notifications,
    mark_all_read,
    mark_read,
    notify_members,
    notify_user,
)
from jobs.models import Job
from tenants.models import Role, Tenant
from tests.factories import MembershipFactory, make_member

pytestmark = pytest.mark.django_db

LIST = "/api/v1/notifications/"


def client_as(user: Any, tenant: Tenant) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    client.credentials(HTTP_X_TENANT=tenant.slug)
    return client


def titles(response: Any) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["title"] for row in response.json()["results"]]


def stored(user: Any, *, tenant: Tenant, title: str) -> Notification:
    """A notification written as the notifications job writes it."""
    return create_notifications([user], tenant=tenant, notice=Notice(title))[0]


# --- Services and kinds -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_notify_members_is_a_job_that_reaches_active_members_at_or_above_the_role_in_batches(
    tenant, other_tenant, run_worker, settings
):
    settings.CONVEYOR_NOTIFY_BATCH_SIZE = 2
    viewer = make_member(tenant, Role.VIEWER, username="v")
    admin = make_member(tenant, Role.ADMIN, username="a")
    owner = make_member(tenant, Role.OWNER, username="o")
    make_member(tenant, Role.OWNER, username="gone", is_active=False)
    make_member(other_tenant, Role.OWNER, username="elsewhere")

    everyone = notify_members(tenant, title="Maintenance tonight")
    admins = notify_members(tenant, min_role=Role.ADMIN, title="Invoice due")
    assert not Notification.objects.exists()  # nothing is written in the caller's transaction
    run_worker(["notifications"])

    def reached(title: str) -> list[str]:
        rows = Notification.objects.filter(title=title)
        return sorted(rows.values_list("user__username", flat=True))

    assert (everyone.queue, everyone.kind) == ("notifications", "communications.notify_members")
    assert reached("Maintenance tonight") == sorted([viewer.username, "a", "o"])
    assert reached("Invoice due") == sorted([admin.username, owner.username])
    assert {n.tenant for n in Notification.objects.all()} == {tenant}
    assert Job.objects.get(pk=admins.pk).result == {"notified": 2}


@pytest.mark.django_db(transaction=True)
def test_a_notifications_job_delivered_twice_notifies_each_user_once(tenant, agent, run_worker):
    job = notify_user(agent, tenant=tenant, title="Once")
    run_worker(["notifications"])

    create_notifications([agent], tenant=tenant, notice=Notice("Once"), job=job)  # a retry

    assert Notification.objects.filter(user=agent).count() == 1


@pytest.mark.django_db(transaction=True)
def test_with_an_email_template_the_email_is_rendered_and_queued(tenant, agent, run_worker):
    notify_user(
        agent,
        tenant=tenant,
        title="Your import is complete",
        link="https://app.example.com/imports/1",
        email_template="import-completed",
        context={"import": {"file_name": "leads.csv", "new": 3}},
    )
    run_worker(["notifications"])

    message = Message.objects.get()
    assert (message.recipient, message.subject) == (
        agent.email,
        "Your contact import is complete: leads.csv",
    )
    assert "New contacts:            3" in message.text
    assert "https://app.example.com/imports/1" in message.text
    assert message.job is not None
    assert message.job.queue == "email"


@pytest.mark.django_db(transaction=True)
def test_an_email_that_cannot_be_rendered_does_not_cost_the_in_app_notification(
    tenant, agent, run_worker
):
    notify_user(agent, tenant=tenant, title="Reset", email_template="password-reset")
    run_worker(["notifications"])

    assert Notification.objects.get().title == "Reset"
    assert not Message.objects.exists()  # password-reset needs reset_url


@pytest.mark.django_db(transaction=True)
def test_the_queued_email_is_sent_by_a_worker(tenant, agent, run_worker):
    notify_user(
        agent,
        tenant=tenant,
        title="Report ready",
        email_template="report-ready",
        context={"report": {"name": "October", "format": "PDF"}},
    )

    run_worker(["notifications", "email"])

    assert [(m.to, m.subject) for m in mail.outbox] == [
        ([agent.email], "Your report is ready: October")
    ]
    html = cast(EmailMultiAlternatives, mail.outbox[0]).alternatives[0][0]
    assert '<strong style="color:#111827;">October</strong>' in str(html)


def test_mark_read_keeps_the_first_read_time(tenant, agent):
    notification = stored(agent, tenant=tenant, title="Hello")

    first = mark_read(notification).read_at
    again = mark_read(Notification.objects.get()).read_at

    assert first is not None
    assert again == first


def test_mark_all_read_touches_only_that_users_unread_ones_in_that_tenant(
    tenant, other_tenant, agent, viewer
):
    MembershipFactory.create(user=agent, tenant=other_tenant)
    stored(agent, tenant=tenant, title="a")
    stored(agent, tenant=tenant, title="b")
    stored(agent, tenant=other_tenant, title="elsewhere")
    stored(viewer, tenant=tenant, title="someone else's")

    marked = mark_all_read(tenant=tenant, user=agent)

    unread = Notification.objects.filter(read_at__isnull=True)
    assert marked == 2
    assert sorted(unread.values_list("title", flat=True)) == ["elsewhere", "someone else's"]


# --- API ----------------------------------------------------------------------------------------


def test_a_user_lists_only_their_own_notifications_in_the_tenant(
    tenant, other_tenant, agent, viewer
):
    MembershipFactory.create(user=agent, tenant=other_tenant)
    stored(agent, tenant=tenant, title="first")
    stored(agent, tenant=tenant, title="second")
    stored(agent, tenant=other_tenant, title="elsewhere")
    stored(viewer, tenant=tenant, title="not yours")

    assert titles(client_as(agent, tenant).get(LIST)) == ["second", "first"]
    assert titles(client_as(agent, other_tenant).get(LIST)) == ["elsewhere"]


def test_unread_filter_read_one_read_all_and_the_unread_count(tenant, viewer):
    api = client_as(viewer, tenant)
    first = stored(viewer, tenant=tenant, title="first")
    stored(viewer, tenant=tenant, title="second")
    stored(viewer, tenant=tenant, title="third")

    read = api.post(f"{LIST}{first.pk}/read/")
    count = api.get(f"{LIST}unread-count/").json()
    unread = titles(api.get(LIST, {"unread": "true"}))
    read_all = api.post(f"{LIST}read-all/").json()

    assert (read.status_code, read.json()["is_read"]) == (200, True)
    assert count == {"unread": 2}
    assert unread == ["third", "second"]
    assert read_all == {"marked": 2}
    assert api.get(f"{LIST}unread-count/").json() == {"unread": 0}
    assert titles(api.get(LIST, {"unread": "false"})) == ["third", "second", "first"]


def test_another_users_or_another_tenants_notification_is_404(tenant, other_tenant, agent):
    owner = make_member(tenant, Role.OWNER)
    MembershipFactory.create(user=owner, tenant=other_tenant, role=Role.OWNER)
    theirs = stored(agent, tenant=tenant, title="agent's")
    elsewhere = stored(owner, tenant=other_tenant, title="other tenant")

    as_owner = client_as(owner, tenant).post(f"{LIST}{theirs.pk}/read/")
    wrong_tenant = client_as(owner, tenant).post(f"{LIST}{elsewhere.pk}/read/")

    assert (as_owner.status_code, wrong_tenant.status_code) == (404, 404)
    assert not Notification.objects.filter(read_at__isnull=False).exists()


def test_the_list_needs_a_member_of_the_tenant(tenant, other_tenant):
    outsider = make_member(other_tenant, Role.OWNER)

    response = client_as(outsider, tenant).get(LIST)

    assert response.status_code in (403, 404)


def test_the_list_costs_a_fixed_number_of_queries(tenant, agent, django_assert_max_num_queries):
    for n in range(20):
        stored(agent, tenant=tenant, title=f"n{n}")
    api = client_as(agent, tenant)

    with django_assert_max_num_queries(4):  # tenant, role, count, page
        response = api.get(LIST)

    assert response.json()["count"] == 20


# --- Admin --------------------------------------------------------------------------------------


def test_the_admin_lists_notifications_read_only(admin_client, tenant, agent):
    notification = stored(agent, tenant=tenant, title="Hello")

    changelist = admin_client.get(reverse("admin:communications_notification_changelist"))
    change = admin_client.get(
        reverse("admin:communications_notification_change", args=[notification.pk])
    )
    add = admin_client.get(reverse("admin:communications_notification_add"))

    assert (changelist.status_code, change.status_code, add.status_code) == (200, 200, 403)
    assert b"Hello" in changelist.content
    assert b'name="_save"' not in change.content
