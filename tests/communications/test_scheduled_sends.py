"""Scheduled sends: a message or a campaign goes at its `send_at` (read in the tenant's time
zone when it has no offset), once, with real workers; canceled before it is due, nothing goes."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from communications.models import Campaign, Channel, Contact, Message
from communications.providers import memory_outbox
from communications.services.campaigns import cancel_campaign, create_campaign
from communications.services.messages import cancel_message, due_time, send_message
from jobs.models import Job
from jobs.services.schedules import create_schedule, run_schedule_now
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db(transaction=True)


def soon(seconds: float = 1.5) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)


def contacts(tenant, *phones: str) -> list[Contact]:
    return [
        Contact.objects.create(tenant=tenant, name=f"C{i}", phone=phone)
        for i, phone in enumerate(phones)
    ]


def test_a_scheduled_message_goes_at_its_time_not_before(tenant, run_worker, work_until):
    due = soon()
    message = send_message(
        tenant=tenant, channel=Channel.SMS, recipient="+14155550123", text="Hi", send_at=due
    )
    run_worker()

    assert Job.objects.get(pk=str(message.job_id)).status == Job.Status.SCHEDULED
    assert memory_outbox() == []
    work_until(lambda: Message.objects.get(pk=message.pk).status == Message.Status.SENT)
    assert memory_outbox()[0]["at"] >= due.timestamp()


def test_a_scheduled_message_canceled_before_it_is_due_never_goes(tenant, run_worker):
    message = send_message(
        tenant=tenant, channel=Channel.SMS, recipient="+14155550123", text="Hi", send_at=soon(1)
    )

    cancel_message(message)
    time.sleep(1.2)
    run_worker()

    message.refresh_from_db()
    assert message.status == Message.Status.CANCELED
    assert Job.objects.get(pk=str(message.job_id)).status == Job.Status.CANCELED
    assert memory_outbox() == []


def test_a_scheduled_campaign_starts_once_at_its_time_with_the_audience_of_then(
    tenant, agent, run_worker, work_until
):
    contacts(tenant, "+14155550101")
    first = Contact.objects.get(tenant=tenant)
    first.tags = ["news"]
    first.save()
    campaign = create_campaign(
        tenant=tenant,
        name="Monday",
        channel=Channel.SMS,
        template="welcome",
        tags=["news"],
        by=agent,
        send_at=soon(),
    )
    assert campaign.status == Campaign.Status.SCHEDULED
    later = contacts(tenant, "+14155550102")[0]
    later.tags = ["news"]
    later.save()  # joins the audience before the start

    run_worker()
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SCHEDULED
    work_until(lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.FINISHED)

    campaign.refresh_from_db()
    assert (campaign.recipients, campaign.sent) == (2, 2)
    assert campaign.started_at is not None
    assert campaign.send_at is not None
    assert campaign.started_at >= campaign.send_at
    assert Job.objects.filter(kind="communications.launch_campaign").count() == 1
    assert sorted(m["to"] for m in memory_outbox()) == ["+14155550101", "+14155550102"]


def test_a_scheduled_campaign_canceled_before_it_is_due_sends_nothing(tenant, agent, run_worker):
    contacts(tenant, "+14155550101")
    campaign = create_campaign(
        tenant=tenant,
        name="Later",
        channel=Channel.SMS,
        template="welcome",
        contact_ids=list(Contact.objects.values_list("pk", flat=True)),
        by=agent,
        send_at=soon(1),
    )

    cancel_campaign(campaign, by=agent)
    time.sleep(1.2)
    run_worker()

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CANCELED
    assert Job.objects.get(pk=str(campaign.job_id)).status == Job.Status.CANCELED
    assert memory_outbox() == []


def wall_clock(year: int, month: int, day: int, hour: int = 0) -> datetime:
    """A time without an offset, as a person writes "9:00 on Monday"."""
    return datetime(year, month, day, hour, tzinfo=UTC).replace(tzinfo=None)


def utc_hour(value: datetime | None) -> int:
    assert value is not None
    return value.astimezone(UTC).hour


@pytest.mark.django_db
def test_a_time_without_offset_is_read_in_the_tenants_zone_across_daylight_saving(tenant):
    tenant.time_zone = "America/New_York"

    winter = due_time(tenant, wall_clock(2027, 3, 8, 9))  # EST, before the change on the 14th
    summer = due_time(tenant, wall_clock(2027, 3, 15, 9))  # EDT
    paris = due_time(tenant, wall_clock(2027, 3, 15, 9), time_zone="Europe/Paris")

    assert utc_hour(winter) == 14
    assert utc_hour(summer) == 13
    assert utc_hour(paris) == 8
    with pytest.raises(ValidationError) as past:
        due_time(tenant, wall_clock(2020, 1, 1, 9))
    assert "send_at" in past.value.message_dict
    with pytest.raises(ValidationError) as zone:
        due_time(tenant, wall_clock(2027, 1, 1), time_zone="Mars/Olympus")
    assert "time_zone" in zone.value.message_dict


def test_the_api_schedules_a_message_in_the_tenants_zone_and_cancels_it(api_client, agent, tenant):
    tenant.time_zone = "Europe/Paris"
    tenant.save()
    _, raw = make_api_key(agent, tenant=tenant)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    body = {
        "channel": "sms",
        "recipient": "+14155550123",
        "text": "Hi",
        "send_at": "2027-07-05T09:00:00",
    }

    sent = api_client.post("/api/v1/messages/", body, format="json")
    canceled = api_client.post(f"/api/v1/messages/{sent.json()['id']}/cancel/")
    again = api_client.post(f"/api/v1/messages/{sent.json()['id']}/cancel/")
    bad = api_client.post("/api/v1/messages/", {**body, "time_zone": "Nowhere"}, format="json")

    assert sent.status_code == 202, sent.json()
    assert sent.json()["send_at"] == "2027-07-05T07:00:00Z"
    assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")
    assert again.status_code == 200
    assert bad.status_code == 400
    assert "time_zone" in bad.json()


def test_a_schedule_starts_a_draft_and_says_why_it_cannot_start_an_ended_one(
    tenant, agent, run_worker
):
    contacts(tenant, "+14155550101")
    ids = list(Contact.objects.values_list("pk", flat=True))
    draft = create_campaign(
        tenant=tenant,
        name="D",
        channel=Channel.SMS,
        template="welcome",
        contact_ids=ids,
        by=agent,
        start=False,
    )
    schedule = create_schedule(
        tenant=tenant,
        name="start it",
        kind="communications.launch_campaign",
        payload={"campaign_id": draft.pk},
        interval_seconds=3600,
    )

    first = run_schedule_now(schedule)
    run_worker()
    second = run_schedule_now(schedule)
    run_worker()

    draft.refresh_from_db()
    assert (draft.status, draft.sent) == (Campaign.Status.FINISHED, 1)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Job.Status.SUCCEEDED
    assert second.status == Job.Status.FAILED
    assert "finished: it cannot start" in second.error_message


def test_the_admin_schedules_a_campaign_at_a_wall_clock_time_of_the_tenant(admin_client, tenant):
    tenant.time_zone = "Europe/Paris"
    tenant.save()
    ada = contacts(tenant, "+14155550101")[0]

    answer = admin_client.post(
        "/admin/communications/campaign/add/",
        {
            "tenant": tenant.pk,
            "name": "Summer",
            "channel": "sms",
            "template": "welcome",
            "contact_ids": str(ada.pk),
            "tags": "",
            "variables": "{}",
            "send_at_0": "2027-07-05",
            "send_at_1": "09:00:00",
        },
    )

    assert answer.status_code == 302
    campaign = Campaign.objects.get()
    assert campaign.status == Campaign.Status.SCHEDULED
    assert campaign.send_at == datetime(2027, 7, 5, 7, 0, tzinfo=UTC)
    assert Job.objects.get(pk=str(campaign.job_id)).status == Job.Status.SCHEDULED
