"""The first run's sample data: made by `seed_demo` through the services and real jobs, once,
with webhook deliveries that the demo receiver verifies with the `standardwebhooks` package."""

import io
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from communications.models import (
    Campaign,
    Contact,
    ContactImport,
    Message,
    MessageTemplate,
    WebhookDelivery,
    WebhookEndpoint,
)
from demo.models import DemoSeed
from demo.receiver import DemoReceiver
from jobs.models import Job, Schedule
from reports.models import Report
from tenants.models import ApiKey, Tenant
from tenants.services import DEMO_SLUG
from tests.workers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver(settings: Any) -> Iterator[DemoReceiver]:
    settings.CONVEYOR_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    running = DemoReceiver("127.0.0.1", 0)
    running.start()
    yield running
    running.stop()


def seed(receiver: DemoReceiver, *options: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *options, receiver_url=receiver.url, stdout=out)
    return out.getvalue()


def statuses(tenant: Tenant) -> set[str]:
    return set(Job.objects.filter(tenant=tenant).values_list("status", flat=True))


def test_the_first_run_seeds_the_demo_through_the_product_and_only_once(receiver, run_worker):
    said = seed(receiver)

    tenant = Tenant.objects.get(slug=DEMO_SLUG)
    contact_import = ContactImport.objects.get(tenant=tenant)
    campaign = Campaign.objects.get(tenant=tenant)
    report = Report.objects.get(tenant=tenant)
    assert "Demo data ready: 300 contacts" in said
    assert Contact.objects.filter(tenant=tenant).count() == 300
    assert (contact_import.new_count, contact_import.invalid_count) == (300, 3)
    assert MessageTemplate.objects.filter(tenant=tenant).count() == 2
    assert campaign.status == Campaign.Status.FINISHED
    assert campaign.messages.filter(status=Message.Status.SENT).count() == 30
    assert (report.status, report.format) == (Report.Status.SUCCEEDED, "pdf")
    assert report.file.read(5) == b"%PDF-"
    assert Schedule.objects.filter(tenant=tenant).count() == 3
    assert {
        Job.Status.SUCCEEDED,
        Job.Status.FAILED,
        Job.Status.CANCELED,
        Job.Status.SCHEDULED,
        Job.Status.QUEUED,
        Job.Status.DEFERRED,
    } <= statuses(tenant)
    long = Job.objects.get(tenant=tenant, kind="jobs.sleep", schedule=None)
    assert long.status == Job.Status.QUEUED  # the reports worker of `make run` starts it
    assert long.timeout > long.payload["seconds"]

    # The deliveries wait for the webhooks worker: the receiver verifies each one.
    run_worker(["webhooks"])
    good = WebhookDelivery.objects.filter(tenant=tenant, endpoint__url__endswith="/hooks")
    flaky = WebhookDelivery.objects.filter(tenant=tenant, endpoint__url__endswith="/flaky")
    assert good.count() >= 3
    assert set(good.values_list("status", flat=True)) == {WebhookDelivery.Status.SUCCEEDED}
    assert {r.path for r in receiver.received if r.verified} == {"/hooks"}
    assert all(r.verified for r in receiver.received if r.path == "/hooks")
    assert set(flaky.values_list("status", flat=True)) == {WebhookDelivery.Status.RETRYING}
    assert set(
        Job.objects.filter(pk__in=flaky.values("job_id")).values_list("status", flat=True)
    ) == {Job.Status.RETRYING}

    again = seed(receiver)

    assert "has its sample data already" in again
    assert Contact.objects.filter(tenant=tenant).count() == 300
    assert DemoSeed.objects.count() == 1


def test_reset_deletes_the_demo_tenant_and_seeds_a_fresh_one(receiver):
    seed(receiver)
    first = Tenant.objects.get(slug=DEMO_SLUG)

    said = seed(receiver, "--reset")

    fresh = Tenant.objects.get(slug=DEMO_SLUG)
    assert fresh.pk != first.pk
    assert "Deleted the demo tenant" in said
    assert "API key" in said
    assert Contact.objects.filter(tenant=fresh).count() == 300
    assert not Contact.objects.filter(tenant_id=first.pk).exists()
    assert ApiKey.objects.filter(tenant=fresh, revoked_at__isnull=True).count() == 1
    assert WebhookEndpoint.objects.count() == 2


def test_a_receiver_url_that_is_not_http_is_refused():
    with pytest.raises(CommandError, match="give an http"):
        call_command("seed_demo", receiver_url="ftp://127.0.0.1/")


def test_the_receiver_refuses_a_delivery_that_no_secret_verifies(receiver):
    import urllib.request

    request = urllib.request.Request(
        f"{receiver.url}/hooks",
        data=b'{"id":"e1","type":"contact.created"}',
        headers={"webhook-id": "e1", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
    )

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)

    assert refused.value.code == 401
    wait_for(lambda: len(receiver.received) == 1)
    assert not receiver.received[0].verified


def test_the_admin_says_conveyor_and_shows_the_demo_seed_to_operators(admin_client, tenant):
    DemoSeed.objects.create(tenant=tenant, summary={"contacts": 300})

    index = admin_client.get("/admin/")
    listed = admin_client.get("/admin/demo/demoseed/")

    assert index.status_code == 200
    assert "<title>Operations | Conveyor</title>" in index.text
    assert '<a href="/admin/">Conveyor</a>' in index.text
    assert listed.status_code == 200
    assert "300" in listed.text
