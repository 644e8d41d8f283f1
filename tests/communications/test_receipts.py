"""Delivery receipts: each provider's signed request is accepted and recorded by a job as the
message's timeline; a forged one is refused and records nothing; STOP and bounces opt out."""

import base64
import json
from urllib.parse import urlencode

import pytest
from django.test import Client

from communications.models import Channel, Contact, DeliveryEvent, Message, Sender
from communications.receipts import meta_signature, twilio_signature
from communications.services.senders import receipt_url, save_sender
from jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


def sent_message(tenant, sender: Sender, provider_id: str, **fields) -> Message:
    contact = Contact.objects.create(
        tenant=tenant, name="Ada", email="ada@example.com", phone="+14155550123"
    )
    recipient = contact.email if sender.channel == Channel.EMAIL else contact.phone
    return Message.objects.create(
        tenant=tenant,
        channel=sender.channel,
        recipient=recipient,
        contact=contact,
        status=Message.Status.SENT,
        sender=sender,
        provider_message_id=provider_id,
        **fields,
    )


def opted_out(message: Message) -> bool:
    return Contact.objects.filter(messages=message, opted_out=True).exists()


def twilio_sender(tenant) -> Sender:
    return save_sender(
        tenant=tenant,
        channel=Channel.SMS,
        provider="twilio",
        from_address="+14155550100",
        options={"account_sid": "AC1"},
        credentials={"auth_token": "twilio-token"},
    )


def meta_sender(tenant) -> Sender:
    return save_sender(
        tenant=tenant,
        channel=Channel.WHATSAPP,
        provider="meta",
        from_address="+14155550100",
        options={"phone_number_id": "1055"},
        credentials={"access_token": "t", "app_secret": "app-secret", "verify_token": "vt-1"},
    )


@pytest.fixture(autouse=True)
def public_url(settings) -> None:
    """Providers call the receipt URL as this deployment's public address makes it."""
    settings.CONVEYOR_PUBLIC_URL = "http://testserver"


def post_twilio(client: Client, sender: Sender, params: dict, *, token: str = "twilio-token"):
    url = receipt_url(sender)  # what Twilio signs: the URL it calls
    return client.post(
        url,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=twilio_signature(token, url, params),
    )


def test_a_signed_twilio_status_callback_is_recorded_by_a_job(client, tenant, run_worker):
    sender = twilio_sender(tenant)
    message = sent_message(tenant, sender, "SM1")

    answer = post_twilio(client, sender, {"MessageSid": "SM1", "MessageStatus": "delivered"})
    run_worker()

    assert answer.status_code == 200
    job = Job.objects.get(kind="communications.record_receipts")
    assert job.result == {"recorded": 1, "unknown": 0, "opted_out": 0}, (
        job.status,
        job.error_message,
    )
    message.refresh_from_db()
    assert message.delivery_status == "delivered"
    assert list(message.deliveries.values_list("status", flat=True)) == ["delivered"]
    assert Job.objects.get(kind="communications.record_receipts").status == "succeeded"


def test_a_forged_twilio_callback_is_refused_and_records_nothing(client, tenant, run_worker):
    sender = twilio_sender(tenant)
    sent_message(tenant, sender, "SM1")

    answer = post_twilio(
        client, sender, {"MessageSid": "SM1", "MessageStatus": "delivered"}, token="guess"
    )

    assert answer.status_code == 403
    assert not Job.objects.exists()
    assert not DeliveryEvent.objects.exists()


def test_an_sms_stop_reply_opts_the_contact_out(client, tenant, run_worker):
    sender = twilio_sender(tenant)
    message = sent_message(tenant, sender, "SM1")

    post_twilio(client, sender, {"From": "+14155550123", "Body": " stop ", "SmsStatus": "received"})
    run_worker()

    assert opted_out(message)


def test_meta_statuses_build_the_timeline_and_a_stop_text_opts_out(client, tenant, run_worker):
    sender = meta_sender(tenant)
    message = sent_message(tenant, sender, "wamid.1")
    value = {
        "statuses": [
            {"id": "wamid.1", "status": "read", "timestamp": "1790000100"},
            {"id": "wamid.1", "status": "delivered", "timestamp": "1790000000"},
            {"id": "wamid.1", "status": "delivered", "timestamp": "1790000000"},
        ],
        "messages": [{"from": "14155550123", "type": "text", "text": {"body": "STOP"}}],
    }
    body = json.dumps({"entry": [{"changes": [{"value": value}]}]}).encode()

    forged = client.post(
        receipt_url(sender),
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=meta_signature("wrong", body),
    )
    signed = client.post(
        receipt_url(sender),
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=meta_signature("app-secret", body),
    )
    run_worker()

    assert (forged.status_code, signed.status_code) == (403, 200)
    message.refresh_from_db()
    assert message.delivery_status == "read"  # a late "delivered" does not move it back
    assert [e.status for e in message.deliveries.all()] == ["delivered", "read"]
    assert opted_out(message)


def test_the_meta_handshake_echoes_the_challenge_only_for_the_right_token(client, tenant):
    sender = meta_sender(tenant)
    url = receipt_url(sender)

    right = client.get(
        url, {"hub.mode": "subscribe", "hub.verify_token": "vt-1", "hub.challenge": "42"}
    )
    wrong = client.get(
        url, {"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "42"}
    )

    assert (right.status_code, right.content) == (200, b"42")
    assert wrong.status_code == 403


def test_a_postmark_hard_bounce_through_anymail_marks_it_bounced_and_opts_out(
    client, tenant, run_worker
):
    sender = save_sender(
        tenant=tenant,
        channel=Channel.EMAIL,
        provider="postmark",
        from_address="news@acme.example.com",
        credentials={"api_key": "k", "webhook_secret": "hook:s3cret"},
    )
    message = sent_message(tenant, sender, "pm-1")
    bounce = {
        "RecordType": "Bounce",
        "MessageID": "pm-1",
        "Type": "HardBounce",
        "TypeCode": 1,
        "Email": "ada@example.com",
        "BouncedAt": "2026-12-07T10:00:00Z",
        "Description": "The server was unable to deliver your message",
        "Details": "smtp;550 5.1.1 unknown user",
    }
    good = "Basic " + base64.b64encode(b"hook:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"hook:guess").decode()

    forged = client.post(
        receipt_url(sender), bounce, content_type="application/json", HTTP_AUTHORIZATION=bad
    )
    signed = client.post(
        receipt_url(sender), bounce, content_type="application/json", HTTP_AUTHORIZATION=good
    )
    run_worker()

    assert (forged.status_code, signed.status_code) == (403, 200)
    message.refresh_from_db()
    assert message.delivery_status == "bounced"
    assert opted_out(message)


def test_another_tenants_message_is_not_touched_by_a_senders_receipt(
    client, tenant, other_tenant, run_worker
):
    sender = twilio_sender(tenant)
    theirs = sent_message(other_tenant, twilio_sender(other_tenant), "SM1")

    post_twilio(client, sender, {"MessageSid": "SM1", "MessageStatus": "delivered"})
    run_worker()

    theirs.refresh_from_db()
    assert theirs.delivery_status == ""
