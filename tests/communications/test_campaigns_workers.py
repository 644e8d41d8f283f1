"""Campaigns on real `manage.py rqworker` processes and the memory provider (a Redis list every
process writes to): each recipient once, never over the rate limit, cancel, a killed worker."""

from collections import Counter

import pytest
from django.conf import settings

from communications.models import Campaign, Channel, Contact, Message
from communications.providers import memory_outbox
from communications.services.campaigns import cancel_campaign, create_campaign
from jobs.models import Job
from jobs.runtime.reconciler import reconcile
from tenants.models import Tenant
from tests.workers import kill_machine, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

QUEUES = ("messaging", "email")


@pytest.fixture(autouse=True)
def memory_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker processes send SMS and WhatsApp through the memory provider, whatever .env says."""
    monkeypatch.setenv("SMS_PROVIDER", "memory")
    monkeypatch.setenv("WHATSAPP_PROVIDER", "memory")


def make_audience(tenant: Tenant, count: int) -> set[str]:
    """`count` contacts tagged "all": every 20th opted out, every 50th without a phone.
    Returns the phones that should get a message."""
    contacts = [
        Contact(
            tenant=tenant,
            name=f"Person{n} Example",
            phone="" if n % 50 == 1 else f"+1415{n:07d}",
            email=f"p{n}@example.com",
            tags=["all"],
            opted_out=n % 20 == 0,
        )
        for n in range(count)
    ]
    Contact.objects.bulk_create(contacts, batch_size=1000)
    return {c.phone for c in contacts if c.phone and not c.opted_out}


def limit_rate(tenant: Tenant, rate: str) -> None:
    tenant.rate_limits = {"whatsapp": rate}
    tenant.save(update_fields=["rate_limits"])


def start(tenant: Tenant, agent) -> Campaign:
    return create_campaign(
        tenant=tenant,
        name="Everyone",
        channel=Channel.WHATSAPP,
        template="welcome",
        tags=["all"],
        by=agent,
    )


def finished(campaign: Campaign) -> bool:
    campaign.refresh_from_db()
    return campaign.finished_at is not None


def busiest_second(times: list[float]) -> int:
    """The most sends in any window of one second, [t, t + 1)."""
    times, most, first = sorted(times), 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_2000_recipients_on_two_workers_go_out_once_each_within_the_limit(
    tenant, agent, worker_process
):
    limit_rate(tenant, "200/s")
    eligible = make_audience(tenant, 2000)

    campaign = start(tenant, agent)
    worker_process(*QUEUES)
    worker_process(*QUEUES)
    wait_for(lambda: finished(campaign), timeout=90, every=0.5)

    outbox = memory_outbox()
    sends = Counter(entry["to"] for entry in outbox)
    assert set(sends) == eligible
    assert max(sends.values()) == 1
    # Tokens are spaced at the rate; the calls of one window in flight may land together.
    in_flight = settings.CONVEYOR_CAMPAIGN_SEND_CONCURRENCY
    assert busiest_second([entry["at"] for entry in outbox]) <= 200 + in_flight
    assert len({entry["pid"] for entry in outbox}) == 2  # both processes sent
    assert campaign.status == Campaign.Status.FINISHED
    skipped = 2000 - len(eligible)
    assert (campaign.recipients, campaign.sent, campaign.skipped, campaign.failed) == (
        2000,
        len(eligible),
        skipped,
        0,
    )
    batches = Job.objects.filter(kind="communications.send_campaign_batch")
    assert batches.count() == 4
    assert set(batches.values_list("status", flat=True)) == {Job.Status.SUCCEEDED}


def test_cancelling_mid_way_stops_every_batch_and_the_totals_add_up(tenant, agent, worker_process):
    limit_rate(tenant, "100/s")
    eligible = make_audience(tenant, 1000)
    campaign = start(tenant, agent)
    worker_process(*QUEUES)
    worker_process(*QUEUES)
    wait_for(lambda: len(memory_outbox()) >= 150, timeout=60, every=0.1)

    canceled = cancel_campaign(campaign, by=agent)
    wait_for(lambda: finished(campaign), timeout=30, every=0.2)

    sent = len(memory_outbox())
    assert canceled.status == Campaign.Status.CANCELED
    assert campaign.status == Campaign.Status.CANCELED
    assert 150 <= sent < len(eligible) - 100
    assert campaign.sent == sent == campaign.messages.filter(status="sent").count()
    assert campaign.canceled == len(eligible) - sent - campaign.failed
    assert campaign.failed <= 1  # at most a message that was in the provider's hands
    assert campaign.sent + campaign.failed + campaign.skipped + campaign.canceled == 1000
    assert not campaign.messages.filter(status__in=Message.PENDING).exists()
    statuses = set(
        Job.objects.filter(kind="communications.send_campaign_batch").values_list(
            "status", flat=True
        )
    )
    assert statuses <= {Job.Status.CANCELED, Job.Status.SUCCEEDED}


def test_a_worker_killed_mid_batch_is_rescued_and_no_recipient_gets_two_messages(
    tenant, agent, worker_process
):
    limit_rate(tenant, "100/s")
    eligible = make_audience(tenant, 600)
    campaign = start(tenant, agent)
    victim = worker_process(*QUEUES, heartbeat=1, heartbeat_grace=2)
    wait_for(lambda: len(memory_outbox()) >= 100, timeout=60, every=0.1)

    kill_machine(victim)
    worker_process(*QUEUES, heartbeat=1, heartbeat_grace=2)

    # The reconciler rescues the dead worker's batch; its retry is released when due (the
    # victim's RQ scheduler lock outlives it, so no scheduler would move it for a minute).
    def reconciled_and_finished() -> bool:
        reconcile(settle_seconds=0, overdue_seconds=0)
        return finished(campaign)

    wait_for(reconciled_and_finished, timeout=90, every=0.5)

    sends = Counter(entry["to"] for entry in memory_outbox())
    assert max(sends.values()) == 1
    unknown = campaign.messages.filter(status="failed", error__startswith="Outcome unknown")
    assert set(sends) | set(unknown.values_list("recipient", flat=True)) == eligible
    # At most the window of provider calls the victim had made at once (claimed, not marked).
    assert unknown.count() <= settings.CONVEYOR_CAMPAIGN_SEND_CONCURRENCY
    assert campaign.status == Campaign.Status.FINISHED
    assert campaign.sent + campaign.failed == len(eligible)
    rescued = Job.objects.filter(kind="communications.send_campaign_batch", logs__event="rescued")
    assert rescued.exists()
