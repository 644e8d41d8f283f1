"""Built-in emails fire on their events: welcome when a member joins, password-reset through
Django's flow, contact-created to the members the tenant chose, campaign-finished with
absolute links."""

import re

import pytest
from django.core import mail

from communications.models import Channel, Contact, Message, Notification
from communications.services.campaigns import create_campaign
from tenants.models import Role
from tenants.services import add_member
from tests.factories import UserFactory, make_api_key, make_member

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_new_member_is_welcomed_in_app_and_by_email(tenant, run_worker):
    user = UserFactory.create(first_name="Ada")

    add_member(tenant, user=user, role=Role.AGENT)
    run_worker(["notifications", "email"])

    assert Notification.objects.get(user=user).title == f"Welcome to {tenant.name}"
    assert [(m.to, m.subject) for m in mail.outbox] == [([user.email], f"Welcome to {tenant.name}")]
    assert mail.outbox[0].body.startswith("Hi Ada,")


def test_a_new_contact_notifies_the_members_the_tenant_chose(api_client, tenant, agent, run_worker):
    admin = make_member(tenant, Role.ADMIN, first_name="Grace")
    _, raw = make_api_key(agent, tenant=tenant)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    body = {"name": "Ada Lovelace", "email": "ada@example.com"}

    quiet = api_client.post("/api/v1/contacts/", body, format="json")
    tenant.contact_created_notify = Role.ADMIN
    tenant.save()
    told = api_client.post(
        "/api/v1/contacts/", {**body, "email": "ada2@example.com"}, format="json"
    )
    run_worker(["notifications", "email"])

    assert (quiet.status_code, told.status_code) == (201, 201)
    notified = Notification.objects.get()
    assert (notified.user, notified.title) == (admin, "New contact: Ada Lovelace")
    assert [m.to for m in mail.outbox] == [[admin.email]]
    assert "ada2@example.com" in mail.outbox[0].body
    assert f"/admin/communications/contact/{told.json()['id']}/change/" in mail.outbox[0].body


def test_password_reset_sends_the_tenants_template_and_stores_no_link(client, tenant, agent):
    answer = client.post("/admin/password_reset/", {"email": agent.email})

    assert answer.status_code == 302
    assert [(m.to, m.subject) for m in mail.outbox] == [
        ([agent.email], f"Reset your {tenant.name} password")
    ]
    link = re.search(r"http://testserver(/reset/\S+/)", str(mail.outbox[0].body))
    assert link is not None
    assert client.get(link.group(1)).status_code == 302  # on to the set-password form
    assert not Message.objects.exists()  # the link is a credential: not kept anywhere


def test_a_finished_campaign_emails_its_own_template_with_absolute_links(
    tenant, agent, work_until, settings
):
    settings.CONVEYOR_PUBLIC_URL = "https://conveyor.example.com"
    contact = Contact.objects.create(tenant=tenant, name="Ada", phone="+14155550123")
    campaign = create_campaign(
        tenant=tenant,
        name="Launch",
        channel=Channel.SMS,
        template="welcome",
        contact_ids=[contact.pk],
        by=agent,
    )

    work_until(lambda: Message.objects.filter(template="campaign-finished").exists())

    email = Message.objects.get(template="campaign-finished")
    assert email.subject == "Campaign finished: Launch"
    page = f"https://conveyor.example.com/admin/communications/campaign/{campaign.pk}/change/"
    assert page in email.text
    assert "Sent:       1" in email.text
