"""Campaigns with in-process workers: snapshot, batches, skips, failures, cancel, API, admin."""

from typing import Any

import pytest
from django.core import mail

from communications.models import (
    Campaign,
    Channel,
    Contact,
    Message,
    MessageTemplate,
    Notification,
)
from communications.providers import fail_next, memory_outbox, reject
from communications.selectors.campaigns import campaign_totals
from communications.services.campaigns import cancel_campaign, create_campaign
from jobs.errors import InvalidTransition
from jobs.models import Job
from tests.communications.test_messages import http_receiver
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def memory_provider(settings) -> None:
    """SMS and WhatsApp go to the memory provider, whatever the environment says."""
    settings.CONVEYOR_MESSAGING = {
        channel: {**config, "PROVIDER": "memory"}
        for channel, config in settings.CONVEYOR_MESSAGING.items()
    }


def make_contacts(
    tenant, count: int, *, tags: tuple[str, ...] = ("news",), first: int = 0, **fields: Any
) -> list[Contact]:
    return Contact.objects.bulk_create(
        [
            Contact(
                tenant=tenant,
                name=f"Person{n} Example",
                phone=f"+1415555{n:04d}",
                email=f"person{n}@example.com",
                tags=list(tags),
                **fields,
            )
            for n in range(first, first + count)
        ]
    )


def finished(campaign: Campaign) -> bool:
    campaign.refresh_from_db()
    return campaign.finished_at is not None


def test_a_campaign_sends_each_eligible_contact_once_and_counts_the_rest(
    tenant, agent, settings, work_until
):
    settings.CONVEYOR_CAMPAIGN_BATCH_SIZE = 3
    contacts = make_contacts(tenant, 7)
    Contact.objects.filter(pk=contacts[0].pk).update(opted_out=True)
    Contact.objects.filter(pk=contacts[1].pk).update(phone="")
    make_contacts(tenant, 1, tags=("other",), first=100)

    campaign = create_campaign(
        tenant=tenant,
        name="News",
        channel=Channel.WHATSAPP,
        template="welcome",
        tags=["news"],
        by=agent,
    )
    work_until(lambda: finished(campaign))

    sent = sorted(entry["to"] for entry in memory_outbox())
    assert sent == sorted(c.phone for c in contacts[2:])
    assert all(entry["text"].startswith("Hi Person") for entry in memory_outbox())
    assert campaign.status == Campaign.Status.FINISHED
    assert (campaign.recipients, campaign.sent, campaign.skipped) == (7, 5, 2)
    assert Job.objects.filter(kind="communications.send_campaign_batch").count() == 2
    assert Notification.objects.get(user=agent).body.startswith("5 sent, 0 failed, 2 skipped")
    assert agent.email in [email.to[0] for email in mail.outbox]


def test_one_recipients_failure_is_recorded_and_the_rest_go_on(tenant, agent, work_until):
    contacts = make_contacts(tenant, 4)
    reject(contacts[1].phone)

    campaign = create_campaign(
        tenant=tenant,
        name="N",
        channel=Channel.SMS,
        template="welcome",
        contact_ids=[c.pk for c in contacts],
        by=agent,
    )
    work_until(lambda: finished(campaign))

    assert (campaign.status, campaign.sent, campaign.failed) == ("finished", 3, 1)
    failed = Message.objects.get(campaign=campaign, status=Message.Status.FAILED)
    assert failed.recipient == contacts[1].phone
    assert "400" in failed.error


def test_a_passing_provider_failure_retries_only_those_recipients(tenant, agent, work_until):
    contacts = make_contacts(tenant, 5)
    fail_next(contacts[1].phone, times=2, retry_after=0)
    fail_next(contacts[3].phone, times=1, retry_after=0)

    campaign = create_campaign(
        tenant=tenant, name="N", channel=Channel.SMS, template="welcome", tags=["news"], by=agent
    )
    work_until(lambda: finished(campaign), timeout=40)

    assert sorted(e["to"] for e in memory_outbox()) == sorted(c.phone for c in contacts)
    attempts = dict(Message.objects.filter(campaign=campaign).values_list("recipient", "attempts"))
    assert attempts == {c.phone: {1: 3, 3: 2}.get(n, 1) for n, c in enumerate(contacts)}
    assert (campaign.sent, campaign.failed) == (5, 0)
    [batch] = Job.objects.filter(kind="communications.send_campaign_batch")
    assert batch.attempt == 3


def test_a_recipient_still_failing_at_the_last_attempt_fails_and_the_campaign_finishes(
    tenant, agent, work_until
):
    contacts = make_contacts(tenant, 2)
    fail_next(contacts[0].phone, times=10, retry_after=0)

    campaign = create_campaign(
        tenant=tenant, name="N", channel=Channel.SMS, template="welcome", tags=["news"], by=agent
    )
    work_until(lambda: finished(campaign), timeout=60)

    assert (campaign.status, campaign.sent, campaign.failed) == ("finished", 1, 1)
    assert Message.objects.get(campaign=campaign, status="failed").attempts == 5


def test_an_email_campaign_goes_out_on_the_email_queue_one_email_per_contact(
    tenant, agent, work_until
):
    contacts = make_contacts(tenant, 3)

    campaign = create_campaign(
        tenant=tenant, name="E", channel=Channel.EMAIL, template="welcome", tags=["news"]
    )
    work_until(lambda: finished(campaign))

    assert sorted(email.to[0] for email in mail.outbox) == sorted(c.email for c in contacts)
    assert {email.subject for email in mail.outbox} == {"Welcome to Acme"}
    [batch] = Job.objects.filter(kind="communications.send_campaign_batch")
    assert batch.queue == "email"


def test_a_recipient_missing_a_variable_fails_with_its_name_and_the_rest_are_sent(
    tenant, work_until
):
    contacts = make_contacts(tenant, 3)
    Contact.objects.filter(pk__in=[contacts[0].pk, contacts[2].pk]).update(
        custom_fields={"code": "A1"}
    )
    MessageTemplate.objects.create(
        tenant=tenant,
        name="promo",
        channel=Channel.SMS,
        body="Your code: {{ contact.custom_fields.code }}",
    )

    campaign = create_campaign(
        tenant=tenant, name="P", channel=Channel.SMS, template="promo", tags=["news"]
    )
    work_until(lambda: finished(campaign))

    assert [e["text"] for e in memory_outbox()] == ["Your code: A1", "Your code: A1"]
    failed = campaign.messages.get(status=Message.Status.FAILED)
    assert failed.contact_id == contacts[1].pk
    assert "contact.custom_fields.code" in failed.error
    assert (campaign.status, campaign.sent, campaign.failed) == ("finished", 2, 1)


def test_an_http_provider_answering_503_for_some_recipients_retries_only_those(
    tenant, settings, work_until
):
    contacts = make_contacts(tenant, 4)
    down = {contacts[0].phone: 1, contacts[2].phone: 2}

    with http_receiver(settings) as provider:
        provider.down_for = dict(down)
        campaign = create_campaign(
            tenant=tenant, name="H", channel=Channel.SMS, template="welcome", tags=["news"]
        )
        work_until(lambda: finished(campaign))

    assert (campaign.status, campaign.sent, campaign.failed) == ("finished", 4, 0)
    for contact in contacts:
        expected = [503] * down.get(contact.phone, 0) + [200]
        assert provider.sent_to(contact.phone) == expected
    [batch] = Job.objects.filter(kind="communications.send_campaign_batch")
    assert batch.attempt == 3


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_cancel_before_it_starts_sends_nothing_and_cancel_is_idempotent(tenant, agent):
    make_contacts(tenant, 3)
    campaign = create_campaign(
        tenant=tenant, name="N", channel=Channel.SMS, template="welcome", tags=["news"], by=agent
    )

    cancel_campaign(campaign, by=agent)
    again = cancel_campaign(campaign, by=agent)

    assert again.status == Campaign.Status.CANCELED
    assert again.finished_at is not None
    assert Job.objects.get(pk=str(campaign.job_id)).status == Job.Status.CANCELED
    assert memory_outbox() == []


def test_cancel_after_the_snapshot_stops_every_batch_and_the_totals_add_up(
    tenant, agent, settings, run_worker, work_until
):
    settings.CONVEYOR_CAMPAIGN_BATCH_SIZE = 2
    make_contacts(tenant, 5)
    campaign = create_campaign(
        tenant=tenant, name="N", channel=Channel.SMS, template="welcome", tags=["news"], by=agent
    )
    run_worker(max_jobs=1)  # the start job only: snapshot and batches

    cancel_campaign(campaign, by=agent)
    work_until(lambda: finished(campaign))

    assert campaign.status == Campaign.Status.CANCELED
    assert (campaign.sent, campaign.canceled, campaign.recipients) == (0, 5, 5)
    batches = Job.objects.filter(kind="communications.send_campaign_batch")
    assert set(batches.values_list("status", flat=True)) == {Job.Status.CANCELED}
    assert memory_outbox() == []


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_a_finished_campaign_cannot_be_canceled(tenant):
    campaign = _finished_campaign(tenant)

    with pytest.raises(InvalidTransition, match="already finished"):
        cancel_campaign(campaign)


def _finished_campaign(tenant) -> Campaign:
    campaign = create_campaign(
        tenant=tenant, name="Done", channel="sms", template="welcome", tags=["news"], start=False
    )
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.FINISHED)
    campaign.refresh_from_db()
    return campaign


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_live_totals_count_messages_by_status_in_one_query(
    tenant, agent, django_assert_num_queries
):
    make_contacts(tenant, 3)
    campaign = create_campaign(
        tenant=tenant, name="N", channel=Channel.SMS, template="welcome", tags=["news"], by=agent
    )
    Message.objects.bulk_create(
        [
            Message(tenant=tenant, channel="sms", recipient="+1", campaign=campaign, status=s)
            for s in ("queued", "sending", "sent", "sent", "failed", "skipped", "canceled")
        ]
    )
    sent = Message.objects.filter(status="sent")
    sent.filter(pk=sent[0].pk).update(delivery_status="read")
    sent.filter(pk=sent[1].pk).update(delivery_status="delivered")

    with django_assert_num_queries(1):
        totals = campaign_totals(campaign)

    assert totals == {
        "sent": 2,
        "failed": 1,
        "skipped": 1,
        "canceled": 1,
        "pending": 2,
        "recipients": 7,
        "delivered": 2,  # the read one too
        "read": 1,
        "bounced": 0,
        "complained": 0,
    }


# --- API ----------------------------------------------------------------------------------------


@pytest.fixture
def agent_client(api_client, agent, tenant):
    _, raw = make_api_key(agent, tenant=tenant)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api_client


def test_post_campaigns_starts_one_and_its_detail_shows_live_totals(
    agent_client, tenant, work_until
):
    contacts = make_contacts(tenant, 3)

    answer = agent_client.post(
        "/api/v1/campaigns/",
        {
            "name": "Hello",
            "channel": "sms",
            "template": "welcome",
            "contact_ids": [c.pk for c in contacts],
        },
        format="json",
    )
    campaign = Campaign.objects.get(pk=answer.data["id"])
    work_until(lambda: finished(campaign))
    detail = agent_client.get(f"/api/v1/campaigns/{campaign.pk}/")
    canceled = agent_client.post(f"/api/v1/campaigns/{campaign.pk}/cancel/")

    assert answer.status_code == 202
    assert answer.data["status"] == "running"
    assert detail.data["status"] == "finished"
    assert detail.data["totals"] == {
        "recipients": 3,
        "sent": 3,
        "failed": 0,
        "skipped": 0,
        "canceled": 0,
        "pending": 0,
        "delivered": 0,
        "read": 0,
        "bounced": 0,
        "complained": 0,
    }
    assert canceled.status_code == 409


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_a_draft_is_created_with_201_started_later_and_canceled(agent_client, tenant):
    make_contacts(tenant, 2)

    draft = agent_client.post(
        "/api/v1/campaigns/",
        {"name": "D", "channel": "sms", "template": "welcome", "tags": ["news"], "start": False},
        format="json",
    )
    started = agent_client.post(f"/api/v1/campaigns/{draft.data['id']}/start/")
    again = agent_client.post(f"/api/v1/campaigns/{draft.data['id']}/start/")
    canceled = agent_client.post(f"/api/v1/campaigns/{draft.data['id']}/cancel/")

    assert (draft.status_code, draft.data["status"]) == (201, "draft")
    assert (started.status_code, started.data["status"]) == (202, "running")
    assert again.status_code == 409
    assert (canceled.status_code, canceled.data["status"]) == (200, "canceled")


@pytest.mark.django_db  # no worker needed: rolled back, not committed
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "sms", "template": "welcome"}, "contact_ids"),
        ({"channel": "sms", "template": "no-such", "tags": ["a"]}, "template"),
        ({"channel": "sms", "template": "report-ready", "tags": ["a"]}, "template"),
        ({"channel": "pigeon", "template": "welcome", "tags": ["a"]}, "channel"),
        ({"channel": "sms", "template": "welcome", "tags": ["a"], "contact_ids": [1]}, "tags"),
    ],
)
def test_bad_campaigns_answer_400_naming_the_field(agent_client, body, field):
    answer = agent_client.post("/api/v1/campaigns/", {"name": "X", **body}, format="json")

    assert answer.status_code == 400, answer.data
    assert field in answer.data
    assert not Campaign.objects.exists()


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_another_tenants_contacts_and_campaigns_are_out_of_reach(
    agent_client, other_tenant, tenant
):
    theirs = make_contacts(other_tenant, 1)
    their_campaign = create_campaign(
        tenant=other_tenant, name="T", channel="sms", template="welcome", tags=["news"]
    )

    answer = agent_client.post(
        "/api/v1/campaigns/",
        {"name": "X", "channel": "sms", "template": "welcome", "contact_ids": [theirs[0].pk]},
        format="json",
    )

    assert answer.status_code == 400
    assert str(theirs[0].pk) in str(answer.data["contact_ids"])
    assert agent_client.get(f"/api/v1/campaigns/{their_campaign.pk}/").status_code == 404
    assert agent_client.post(f"/api/v1/campaigns/{their_campaign.pk}/cancel/").status_code == 404


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_viewers_may_read_campaigns_but_not_send_them(api_client, viewer, tenant):
    _, raw = make_api_key(viewer, tenant=tenant)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    created = api_client.post(
        "/api/v1/campaigns/",
        {"name": "X", "channel": "sms", "template": "welcome", "tags": ["a"]},
        format="json",
    )

    assert created.status_code == 403
    assert api_client.get("/api/v1/campaigns/").status_code == 200


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_the_campaign_list_counts_every_row_of_a_page_in_one_query(
    agent_client, tenant, django_assert_num_queries
):
    make_contacts(tenant, 2)
    for n in range(3):
        create_campaign(
            tenant=tenant, name=f"C{n}", channel="sms", template="welcome", tags=["news"]
        )

    with django_assert_num_queries(6):  # key and its last use, role, count, page, totals
        page = agent_client.get("/api/v1/campaigns/?status=running")

    assert [row["name"] for row in page.data["results"]] == ["C2", "C1", "C0"]


# --- Admin --------------------------------------------------------------------------------------


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_the_admin_adds_a_draft_starts_it_shows_progress_and_cancels_it(
    client, tenant_admin, tenant
):
    make_contacts(tenant, 2)
    client.force_login(tenant_admin)

    added = client.post(
        "/admin/communications/campaign/add/",
        {
            "tenant": tenant.pk,
            "name": "From the admin",
            "channel": "sms",
            "template": "welcome",
            "contact_ids": "",
            "tags": "news",
            "variables": "{}",
        },
    )
    campaign = Campaign.objects.get()
    started = client.post(
        "/admin/communications/campaign/",
        {"action": "start_selected", "_selected_action": [campaign.pk]},
        follow=True,
    )
    listed = client.get("/admin/communications/campaign/")
    shown = client.get(f"/admin/communications/campaign/{campaign.pk}/change/")
    client.post(
        "/admin/communications/campaign/",
        {"action": "cancel_selected", "_selected_action": [campaign.pk]},
    )

    assert added.status_code == 302
    assert "Started 1 campaign(s)." in started.content.decode()
    assert "to go" in listed.content.decode()
    assert shown.status_code == 200
    campaign.refresh_from_db()
    assert (campaign.created_by, campaign.status) == (tenant_admin, "canceled")
