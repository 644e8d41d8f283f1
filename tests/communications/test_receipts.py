"""Delivery receipts: each provider's signed request is accepted and recorded by a job as the
message's timeline; a forged one is refused and records nothing; STOP and bounces opt out."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from communications.models import Channel, Contact, DeliveryEvent, Message, Sender
from communications.receipts import meta_signature, twilio_signature
from communications.services.senders import receipt_url, save_sender
from jobs.models import Job
from tests.communications.provider_fakes import FakeProvider

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


# --- Amazon SES, through Amazon SNS ------------------------------------------------------------

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def ses_sender(tenant) -> Sender:
    return save_sender(
        tenant=tenant,
        channel=Channel.EMAIL,
        provider="amazon_ses",
        from_address="news@acme.example.com",
        options={"region": "eu-west-1"},
        credentials={
            "access_key_id": "AKIAEXAMPLE",
            "secret_access_key": "aws-s3cret",
            "webhook_secret": "sns:hook-s3cret",
        },
    )


def post_sns(client: Client, sender: Sender, kind: str, fields: dict, *, auth: str | None):
    """What SNS posts: a JSON document sent as text/plain, its type and id also in headers."""
    document = {"Type": kind, "MessageId": str(uuid.uuid4()), "TopicArn": TOPIC, **fields}
    headers = {"x-amz-sns-message-type": kind, "x-amz-sns-message-id": document["MessageId"]}
    return client.post(
        receipt_url(sender),
        json.dumps(document),
        content_type="text/plain; charset=UTF-8",
        headers=headers | ({"Authorization": auth} if auth else {}),
    )


def ses_event(kind: str, message_id: str, details: dict) -> dict:
    mail = {"messageId": message_id, "destination": ["ada@example.com"], "headers": []}
    event = {"eventType": kind, "mail": mail, kind.lower(): details}
    return {"Message": json.dumps(event), "Timestamp": "2026-12-07T10:00:00.000Z"}


def bounce(kind: str) -> dict:
    recipient = {"emailAddress": "ada@example.com", "diagnosticCode": "smtp; 550 5.1.1"}
    return {"bounceType": kind, "bounceSubType": "General", "bouncedRecipients": [recipient]}


def test_ses_events_through_sns_need_the_basic_auth_and_a_hard_bounce_opts_out(
    client, tenant, run_worker
):
    sender = ses_sender(tenant)
    message = sent_message(tenant, sender, "0100-ses-1")
    delivered = ses_event("Delivery", "0100-ses-1", {"recipients": ["ada@example.com"]})
    bounced = ses_event("Bounce", "0100-ses-1", bounce("Permanent"))

    unsigned = post_sns(client, sender, "Notification", bounced, auth=None)
    forged = post_sns(client, sender, "Notification", bounced, auth=basic("sns:guess"))
    run_worker()
    nothing_recorded = not Job.objects.exists() and not opted_out(message)
    signed = [
        post_sns(client, sender, "Notification", event, auth=basic("sns:hook-s3cret"))
        for event in (delivered, bounced)
    ]
    run_worker()

    assert (unsigned.status_code, unsigned["WWW-Authenticate"]) == (
        401,
        'Basic realm="Conveyor receipts"',
    )
    assert forged.status_code == 403
    assert nothing_recorded
    assert [answer.status_code for answer in signed] == [200, 200]
    message.refresh_from_db()
    assert message.delivery_status == "bounced"
    assert [e.status for e in message.deliveries.order_by("status")] == ["bounced", "delivered"]
    assert opted_out(message)


def test_an_ses_soft_bounce_fails_the_message_without_opting_out(client, tenant, run_worker):
    sender = ses_sender(tenant)
    message = sent_message(tenant, sender, "0100-ses-1")

    post_sns(
        client,
        sender,
        "Notification",
        ses_event("Bounce", "0100-ses-1", bounce("Transient")),
        auth=basic("sns:hook-s3cret"),
    )
    run_worker()

    message.refresh_from_db()
    assert message.delivery_status == "failed"
    assert not opted_out(message)


def test_a_signed_sns_subscription_is_confirmed_with_the_senders_keys_at_the_local_endpoint(
    client, tenant, settings
):
    fake = FakeProvider()
    settings.CONVEYOR_AWS_ENDPOINT_URL = fake.url
    sender = ses_sender(tenant)
    confirmation = {"Token": "2336412f37", "SubscribeURL": "https://sns.example.invalid/"}
    try:
        forged = post_sns(
            client, sender, "SubscriptionConfirmation", confirmation, auth=basic("sns:guess")
        )
        signed = post_sns(
            client, sender, "SubscriptionConfirmation", confirmation, auth=basic("sns:hook-s3cret")
        )
        settings.CONVEYOR_AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # AWS unreachable
        unreachable = post_sns(
            client, sender, "SubscriptionConfirmation", confirmation, auth=basic("sns:hook-s3cret")
        )
    finally:
        fake.close()

    assert (forged.status_code, signed.status_code, unreachable.status_code) == (403, 200, 502)
    [call] = fake.calls  # the forged one called nothing
    assert call.body["Action"] == "ConfirmSubscription"
    assert (call.body["TopicArn"], call.body["Token"]) == (TOPIC, "2336412f37")
    assert "Credential=AKIAEXAMPLE/" in call.headers["Authorization"]
    assert "/eu-west-1/sns/aws4_request" in call.headers["Authorization"]
    assert not Job.objects.exists()


# --- SendGrid's signed event webhook -----------------------------------------------------------


def sendgrid_signature(key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """What SendGrid sends in X-Twilio-Email-Event-Webhook-Signature: ECDSA over stamp + body."""
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
def test_sendgrid_events_signed_with_its_key_are_recorded_and_others_refused(
    client, tenant, run_worker
):
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sender = save_sender(
        tenant=tenant,
        channel=Channel.EMAIL,
        provider="sendgrid",
        from_address="news@acme.example.com",
        credentials={"api_key": "k", "webhook_verification_key": base64.b64encode(public).decode()},
    )
    message = sent_message(tenant, sender, "7d3c6e0a-anymail-id")
    events = [
        {"event": "delivered", "email": "ada@example.com", "timestamp": 1796637600},
        {"event": "bounce", "email": "ada@example.com", "timestamp": 1796637660, "reason": "550"},
    ]
    body = json.dumps([{**e, "anymail_id": "7d3c6e0a-anymail-id"} for e in events]).encode()

    def post(signer: ec.EllipticCurvePrivateKey):
        return client.post(
            receipt_url(sender),
            body,
            content_type="application/json",
            HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP="1796637700",
            HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE=sendgrid_signature(
                signer, "1796637700", body
            ),
        )

    forged = post(other)
    signed = post(key)
    run_worker()

    assert (forged.status_code, signed.status_code) == (403, 200)
    message.refresh_from_db()
    assert message.delivery_status == "bounced"
    assert [e.status for e in message.deliveries.order_by("occurred_at")] == [
        "delivered",
        "bounced",
    ]
    assert opted_out(message)


def test_an_email_senders_receipts_are_refused_when_it_stores_nothing_to_check_them(client, tenant):
    sender = save_sender(
        tenant=tenant,
        channel=Channel.EMAIL,
        provider="postmark",
        from_address="news@acme.example.com",
        credentials={"api_key": "k"},
    )
    sent_message(tenant, sender, "pm-1")

    answer = client.post(
        receipt_url(sender),
        {"RecordType": "Delivery", "MessageID": "pm-1", "Recipient": "ada@example.com"},
        content_type="application/json",
    )

    assert answer.status_code == 403
    assert not Job.objects.exists()


def _mailgun(key: str) -> tuple[bytes, dict[str, str]]:
    stamp, token = str(int(time.time())), uuid.uuid4().hex
    signature = hmac.new(key.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    event = {
        "signature": {"timestamp": stamp, "token": token, "signature": signature},
        "event-data": {
            "event": "delivered",
            "timestamp": float(stamp),
            "id": token,
            "recipient": "ada@example.com",
            "message": {"headers": {"message-id": "mg-1@mg.example.com"}},
        },
    }
    return json.dumps(event).encode(), {}


def _resend(secret: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "type": "email.delivered",
            "created_at": "2026-12-07T10:00:00.000Z",
            "data": {"email_id": "re-1", "to": ["ada@example.com"], "subject": "Hello"},
        }
    ).encode()
    event_id, stamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = hmac.new(key, f"{event_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "HTTP_SVIX_ID": event_id,
        "HTTP_SVIX_TIMESTAMP": stamp,
        "HTTP_SVIX_SIGNATURE": "v1," + base64.b64encode(signed).decode(),
    }
    return body, headers


def _brevo(secret: str) -> tuple[bytes, dict[str, str]]:
    event = {
        "event": "delivered",
        "email": "ada@example.com",
        "message-id": "<brevo-1@smtp-relay.example.com>",
        "ts_event": int(time.time()),
    }
    auth = "Basic " + base64.b64encode(secret.encode()).decode()
    return json.dumps(event).encode(), {"HTTP_AUTHORIZATION": auth}


RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-signing-key-0042").decode()


@pytest.mark.parametrize(
    ("esp", "credential", "secret", "provider_id", "signed_by"),
    [
        ("mailgun", "webhook_signing_key", "mg-key", "<mg-1@mg.example.com>", _mailgun),
        ("resend", "signing_secret", RESEND_SECRET, "re-1", _resend),
        ("brevo", "webhook_secret", "hook:s3cret", "<brevo-1@smtp-relay.example.com>", _brevo),
    ],
)
def test_the_other_email_apis_receipts_are_recorded_when_signed_and_refused_when_forged(
    client, tenant, run_worker, esp, credential, secret, provider_id, signed_by
):
    sender = save_sender(
        tenant=tenant,
        channel=Channel.EMAIL,
        provider=esp,
        from_address="news@acme.example.com",
        options={"sender_domain": "mg.example.com"} if esp == "mailgun" else {},
        credentials={"api_key": "k", credential: secret},
    )
    message = sent_message(tenant, sender, provider_id)
    wrong = (
        "whsec_" + base64.b64encode(b"a-guessed-signing-key").decode()
        if esp == "resend"
        else "hook:guess"
        if esp == "brevo"
        else "other-key"
    )

    body, headers = signed_by(wrong)
    forged = client.post(receipt_url(sender), body, content_type="application/json", **headers)
    assert forged.status_code == 403
    assert not Job.objects.exists()
    body, headers = signed_by(secret)
    signed = client.post(receipt_url(sender), body, content_type="application/json", **headers)
    run_worker()

    assert signed.status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == "delivered"
