"""Messaging delivery, contact growth and webhook delivery reports on known datasets."""

import csv
import io
import re
import uuid
from datetime import timedelta

import openpyxl
import pytest

from communications.models import (
    Campaign,
    Contact,
    Message,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from reports.rollups import roll_up_hours
from tests.reports.conftest import DAY_ONE, pdf_text, save_page_png, unzip

PERIOD = {"start": "2026-10-05", "end": "2026-10-07"}


def squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def message(tenant, channel: str, status: str, *, at, latency: float | None = None, campaign=None):
    created = Message.objects.create(
        tenant=tenant, channel=channel, recipient="x@example.com", status=status, campaign=campaign
    )
    sent = at + timedelta(seconds=latency) if latency is not None else None
    Message.objects.filter(pk=created.pk).update(created_at=at, sent_at=sent)
    return created


@pytest.fixture
def messaging_dataset(tenant, other_tenant):
    """Day 1: 3 emails sent (2 s) and 1 failed, 2 SMS sent (4 s) and 1 skipped; day 2: 1
    WhatsApp failed. One finished campaign on day 1; the other tenant's messages never count."""
    newsletter = Campaign.objects.create(
        tenant=tenant,
        name="October newsletter",
        channel="email",
        template="welcome",
        status=Campaign.Status.FINISHED,
        recipients=5,
        sent=3,
        failed=1,
        skipped=1,
    )
    Campaign.objects.filter(pk=newsletter.pk).update(created_at=DAY_ONE + timedelta(hours=8))
    at = DAY_ONE + timedelta(hours=9)
    for _ in range(3):
        message(tenant, "email", "sent", at=at, latency=2, campaign=newsletter)
    message(tenant, "email", "failed", at=at, campaign=newsletter)
    for _ in range(2):
        message(tenant, "sms", "sent", at=at, latency=4)
    message(tenant, "sms", "skipped", at=at)
    message(tenant, "whatsapp", "failed", at=DAY_ONE + timedelta(days=1, hours=3))
    message(other_tenant, "email", "failed", at=at)
    roll_up_hours(DAY_ONE, DAY_ONE + timedelta(days=3))
    return newsletter


def test_the_messaging_pdf_shows_delivery_by_channel_and_the_campaigns(
    messaging_dataset, generate, tmp_path
):
    _, content = generate(type="messaging_delivery", format="pdf", **PERIOD)

    text = squeeze(pdf_text(content, tmp_path))
    assert "Messaging delivery" in text
    for figure in [
        "Messages 8",
        "Sent 5",
        "Failed 2",
        "Skipped 1",
        "Delivery rate 71.4 %",
        "Average send latency 2.800 s",
        "Campaigns 1",
    ]:
        assert figure in text
    assert "2026-10-05 Email 4 3 1 0 75.0 %" in text
    assert "2026-10-05 SMS 3 2 0 1 100.0 %" in text
    assert "2026-10-06 WhatsApp 1 0 1 0 0.0 %" in text
    assert "October newsletter Email Finished 5 3 1 1 75.0 %" in text
    save_page_png(content, "messaging-delivery-page-1")


def test_a_messaging_report_for_one_campaign_counts_its_messages(messaging_dataset, generate):
    _, content = generate(
        type="messaging_delivery", format="csv", campaign=messaging_dataset.pk, **PERIOD
    )

    files = unzip(content)
    summary = dict(csv.reader(io.StringIO(files["summary.csv"].decode())))
    assert (summary["Campaign"], summary["Messages"], summary["Sent"]) == (
        "October newsletter",
        "4",
        "3",
    )
    channels = list(csv.DictReader(io.StringIO(files["channels.csv"].decode())))
    assert [(row["Channel"], row["Failed"]) for row in channels] == [("Email", "1")]


def test_the_messaging_report_counts_delivery_receipts_by_channel(messaging_dataset, generate):
    sent = Message.objects.filter(channel="email", status="sent").order_by("pk")
    Message.objects.filter(pk__in=[sent[0].pk, sent[1].pk]).update(delivery_status="delivered")
    Message.objects.filter(pk=sent[2].pk).update(delivery_status="bounced")

    _, content = generate(type="messaging_delivery", format="csv", **PERIOD)

    receipts = list(csv.DictReader(io.StringIO(unzip(content)["receipts.csv"].decode())))
    assert [(r["Channel"], r["Sent"], r["Delivered"], r["Bounced"]) for r in receipts] == [
        ("Email", "3", "2", "1"),
        ("SMS", "2", "0", "0"),
    ]


@pytest.fixture
def contact_dataset(tenant, other_tenant):
    """Two contacts before the period; on day 1 two from the API and one imported; on day 3
    one added in the admin."""
    rows = [
        (tenant, "api", DAY_ONE - timedelta(days=10)),
        (tenant, "import", DAY_ONE - timedelta(days=2)),
        (tenant, "api", DAY_ONE + timedelta(hours=1)),
        (tenant, "api", DAY_ONE + timedelta(hours=2)),
        (tenant, "import", DAY_ONE + timedelta(hours=3)),
        (tenant, "admin", DAY_ONE + timedelta(days=2, hours=5)),
        (other_tenant, "api", DAY_ONE + timedelta(hours=1)),
    ]
    for n, (owner, source, at) in enumerate(rows):
        contact = Contact.objects.create(tenant=owner, email=f"c{n}@example.com", source=source)
        Contact.objects.filter(pk=contact.pk).update(created_at=at)


def test_the_contact_growth_pdf_shows_new_contacts_per_day_by_source(
    contact_dataset, generate, tmp_path
):
    _, content = generate(type="contact_growth", format="pdf", **PERIOD)

    text = squeeze(pdf_text(content, tmp_path))
    for figure in [
        "New contacts 4",
        "Contacts at start 2",
        "Contacts at end 6",
        "Growth 200.0 %",
        "From Import 1",
    ]:
        assert figure in text
    assert "2026-10-05 3 2 0 1 5" in text
    assert "2026-10-06 0 0 0 0 5" in text
    assert "2026-10-07 1 0 1 0 6" in text


def test_the_contact_growth_xlsx_has_days_and_sources(contact_dataset, generate):
    _, content = generate(type="contact_growth", format="xlsx", **PERIOD)

    book = openpyxl.load_workbook(io.BytesIO(content))
    sources = list(book["New contacts by source"].iter_rows(min_row=2, values_only=True))
    assert sources == [("API", 2, 0.5), ("Admin", 1, 0.25), ("Import", 1, 0.25)]


@pytest.fixture
def webhook_dataset(tenant):
    """Endpoint A: 3 deliveries succeeded (100, 200, 300 ms) and 1 dead after two 1,000 ms
    attempts answered 500; endpoint B: 1 dead delivery that never connected."""
    a = WebhookEndpoint.objects.create(
        tenant=tenant, url="https://a.example.com/hook", secret="s", event_types=["*"]
    )
    b = WebhookEndpoint.objects.create(
        tenant=tenant, url="https://b.example.com/hook", secret="s", event_types=["*"]
    )
    at = DAY_ONE + timedelta(hours=12)
    for n, duration in enumerate([100, 200, 300]):
        delivery = deliver(a, "succeeded", at=at + timedelta(minutes=n), attempts=1)
        attempt(delivery, 1, duration, "succeeded", at=at)
    dead = deliver(a, "failed", at=at, attempts=2, code=500, error="HTTP 500 from the endpoint")
    attempt(dead, 1, 1000, "retrying", at=at)
    attempt(dead, 2, 1000, "failed", at=at + timedelta(minutes=1))
    deliver(b, "failed", at=at + timedelta(days=1), attempts=1, error="connection refused")
    return a, b


def deliver(endpoint, status, *, at, attempts, code=None, error=""):
    delivery = WebhookDelivery.objects.create(
        tenant=endpoint.tenant,
        endpoint=endpoint,
        event_id=uuid.uuid4(),
        event_type="contact.created",
        payload={},
        status=status,
        attempts=attempts,
        last_response_code=code,
        last_error=error,
    )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=at)
    return delivery


def attempt(delivery, number, duration, outcome, *, at):
    WebhookAttempt.objects.create(
        tenant=delivery.tenant,
        delivery=delivery,
        number=number,
        started_at=at,
        duration_ms=duration,
        outcome=outcome,
    )


def test_the_webhook_pdf_shows_success_rate_latency_per_endpoint_and_dead_letters(
    webhook_dataset, generate, tmp_path
):
    _, content = generate(type="webhook_delivery", format="pdf", **PERIOD)

    text = squeeze(pdf_text(content, tmp_path))
    for figure in ["Deliveries 5", "Succeeded 3", "Dead letters 2", "Success rate 60.0 %"]:
        assert figure in text
    assert "active 4 3 1 75.0 % 5 520.0 1,000.0" in text
    assert "active 1 0 1 0.0 % 0 — —" in text
    assert "contact.created 1 — connection refused" in text
    assert "contact.created 2 500 HTTP 500 from the" in text


def test_a_webhook_report_for_one_endpoint(webhook_dataset, generate):
    a, _ = webhook_dataset

    _, content = generate(type="webhook_delivery", format="xlsx", endpoint=str(a.pk), **PERIOD)

    book = openpyxl.load_workbook(io.BytesIO(content))
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(min_row=2, values_only=True)}
    assert (summary["Endpoint"], summary["Deliveries"], summary["Dead letters"]) == (
        "https://a.example.com/hook",
        4,
        1,
    )
