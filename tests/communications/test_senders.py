"""Tenants' own senders: each provider's real client against a local fake of its API, the
senders API and admin, and credentials that never come back out."""

import base64
import io
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from communications import secrets
from communications.models import Campaign, Channel, Contact, Message, Sender
from communications.providers import Outgoing, PermanentSendError, RetryableSendError
from communications.services.campaigns import create_campaign
from communications.services.messages import send_message
from communications.services.senders import save_sender, sender_client
from jobs.models import Job
from tests.communications.provider_fakes import Answer
from tests.factories import make_api_key, make_member

TOKEN = "tok_5ecret_never_shown_0042"
AWS_KEY_ID = "AKIAEXAMPLE0042"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture(autouse=True)
def local_providers(settings) -> None:
    """The fake providers listen on 127.0.0.1, which a real sender may not name."""
    settings.CONVEYOR_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def make_sender(tenant, provider: str, url: str) -> Sender:
    if provider == "twilio":
        return save_sender(
            tenant=tenant,
            channel=Channel.SMS,
            provider="twilio",
            from_address="+14155550100",
            options={"account_sid": "AC123", "api_url": url},
            credentials={"auth_token": TOKEN},
        )
    if provider == "meta":
        return save_sender(
            tenant=tenant,
            channel=Channel.WHATSAPP,
            provider="meta",
            from_address="+14155550100",
            options={"phone_number_id": "1055", "api_url": url},
            credentials={"access_token": TOKEN, "app_secret": "app-s3cret", "verify_token": "vt"},
        )
    if provider == "amazon_ses":  # boto3 calls the deployment's CONVEYOR_AWS_ENDPOINT_URL
        return save_sender(
            tenant=tenant,
            channel=Channel.EMAIL,
            provider="amazon_ses",
            from_address="news@acme.example.com",
            from_name="Acme",
            options={"region": "eu-west-1", "configuration_set": "tracking"},
            credentials={"access_key_id": AWS_KEY_ID, "secret_access_key": TOKEN},
        )
    return save_sender(
        tenant=tenant,
        channel=Channel.EMAIL,
        provider=provider,
        from_address="news@acme.example.com",
        from_name="Acme",
        options={"api_url": url + "/"},
        credentials={"api_key": TOKEN, "webhook_secret": "hook:s3cret"},
    )


def outgoing(sender: Sender) -> Outgoing:
    to = "ada@example.com" if sender.channel == Channel.EMAIL else "+14155550123"
    return Outgoing(channel=sender.channel, to=to, text="Hi", subject="Hello", reference="7")


PROVIDERS = ["twilio", "meta", "postmark", "sendgrid", "amazon_ses"]
SUCCESS = {"sendgrid": 202}  # SendGrid accepts with 202 and no body


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_client_speaks_its_api_and_classifies_every_answer(
    tenant, fake_provider, settings, provider
):
    settings.CONVEYOR_SENDER_TIMEOUT = 0.5
    settings.CONVEYOR_PUBLIC_URL = "http://127.0.0.1:8000"
    settings.CONVEYOR_AWS_ENDPOINT_URL = fake_provider.url
    client = sender_client(make_sender(tenant, provider, fake_provider.url))
    fake_provider.script = [
        Answer(SUCCESS.get(provider, 200)),
        Answer(400),
        Answer(429, {"Retry-After": "7"}),
        Answer(503),
        Answer(200, delay=1.5),
    ]

    provider_id = client.send(outgoing(client_sender := Sender.objects.get(tenant=tenant)))
    with pytest.raises(PermanentSendError) as refused:
        client.send(outgoing(client_sender))
    with pytest.raises(RetryableSendError) as limited:
        client.send(outgoing(client_sender))
    with pytest.raises(RetryableSendError) as down:
        client.send(outgoing(client_sender))
    with pytest.raises(RetryableSendError):
        client.send(outgoing(client_sender))

    assert limited.value.delay == 7.0
    assert down.value.delay is None
    assert len(fake_provider.calls) == 5  # one call each: no retries inside the client
    assert "400" in str(refused.value)
    assert TOKEN not in str(refused.value)  # the fake echoed it: it is scrubbed
    assert AWS_KEY_ID not in str(refused.value)
    first = fake_provider.calls[0]
    if provider == "twilio":
        assert provider_id == "SM" + "0" * 31 + "1"
        assert first.path == "/2010-04-01/Accounts/AC123/Messages.json"
        sender = Sender.objects.get(tenant=tenant)
        assert first.body == {
            "To": "+14155550123",
            "From": "+14155550100",
            "Body": "Hi",
            "StatusCallback": f"http://127.0.0.1:8000/api/v1/receipts/twilio/{sender.pk}/",
        }
    elif provider == "meta":
        assert (provider_id, first.path) == ("wamid.1", "/1055/messages")
        assert first.body["to"] == "14155550123"
        assert first.body["text"] == {"body": "Hi"}
    elif provider == "postmark":
        assert (provider_id, first.path) == ("pm-1", "/email")
        assert first.body["From"] == "Acme <news@acme.example.com>"
    elif provider == "sendgrid":  # anymail's own id, which SendGrid's events carry back
        assert first.path == "/mail/send"
        assert first.headers["Authorization"] == f"Bearer {TOKEN}"
        assert first.body["from"] == {"email": "news@acme.example.com", "name": "Acme"}
        assert first.body["personalizations"][0]["custom_args"] == {"anymail_id": provider_id}
    else:
        assert (provider_id, first.path) == ("0100-ses-1", "/v2/email/outbound-emails")
        assert f"Credential={AWS_KEY_ID}/" in first.headers["Authorization"]
        assert "/eu-west-1/ses/aws4_request" in first.headers["Authorization"]
        assert first.body["ConfigurationSetName"] == "tracking"
        raw = base64.b64decode(first.body["Content"]["Raw"]["Data"]).decode()
        assert "From: Acme <news@acme.example.com>" in raw
        assert "X-Conveyor-Message: 7" in raw


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("provider", "to", "provider_id"),
    [
        ("twilio", "+14155550123", "SM" + "0" * 31 + "2"),
        ("amazon_ses", "ada@example.com", "0100-ses-2"),
    ],
)
def test_a_tenants_sender_carries_its_message_and_a_429_is_retried_by_the_worker(
    tenant, fake_provider, work_until, settings, provider, to, provider_id
):
    settings.CONVEYOR_AWS_ENDPOINT_URL = fake_provider.url
    sender = make_sender(tenant, provider, fake_provider.url)
    fake_provider.script = [Answer(429, {"Retry-After": "0"})]

    message = send_message(
        tenant=tenant, channel=sender.channel, recipient=to, subject="Hello", text="Hi"
    )
    work_until(lambda: Message.objects.get(pk=message.pk).status == Message.Status.SENT)

    message.refresh_from_db()
    assert (message.sender_id, message.attempts) == (sender.pk, 2)
    assert message.provider_message_id == provider_id
    assert len(fake_provider.calls) == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["twilio", "amazon_ses"])
def test_a_campaign_batch_calls_a_slow_provider_a_window_at_a_time(
    tenant, agent, fake_provider, work_until, settings, provider
):
    settings.CONVEYOR_CAMPAIGN_SEND_CONCURRENCY = 5
    settings.CONVEYOR_AWS_ENDPOINT_URL = fake_provider.url
    fake_provider.delay = 0.1
    sender = make_sender(tenant, provider, fake_provider.url)
    contacts = [
        Contact.objects.create(
            tenant=tenant, name=f"C{n}", phone=f"+1415555{n:04d}", email=f"c{n}@example.com"
        )
        for n in range(10)
    ]

    campaign = create_campaign(
        tenant=tenant,
        name="Slow provider",
        channel=sender.channel,
        template="welcome",
        contact_ids=[c.pk for c in contacts],
        by=agent,
    )
    work_until(lambda: Campaign.objects.get(pk=campaign.pk).finished_at is not None)

    campaign.refresh_from_db()
    assert campaign.sent == 10
    # one call a message (an email campaign also emails its "finished" notice), none retried:
    # the batch's threads share one client and none of them closed it under another
    sent = Message.objects.filter(tenant=tenant, channel=sender.channel)
    attempts = list(sent.values_list("attempts", flat=True))
    assert (len(fake_provider.calls), set(attempts)) == (len(attempts), {1})
    assert fake_provider.max_in_flight > 1  # the calls overlapped
    assert fake_provider.max_in_flight <= 5


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
@pytest.mark.parametrize(
    ("esp", "options", "provider_id"),
    [
        ("mailgun", {"sender_domain": "mg.example.com"}, "<mg-1@mg.example.com>"),
        ("resend", {}, "re-1"),
        ("brevo", {}, "<brevo-1@smtp-relay.example.com>"),
    ],
)
def test_the_other_email_apis_send_through_anymail_and_classify_every_answer(
    tenant, fake_provider, settings, esp, options, provider_id
):
    settings.CONVEYOR_SENDER_TIMEOUT = 0.5
    sender = save_sender(
        tenant=tenant,
        channel=Channel.EMAIL,
        provider=esp,
        from_address="news@acme.example.com",
        options={**options, "api_url": fake_provider.url + "/"},
        credentials={"api_key": TOKEN},
    )
    client = sender_client(sender)
    fake_provider.script = [
        Answer(200),
        Answer(400),
        Answer(429, {"Retry-After": "7"}),
        Answer(503),
        Answer(200, delay=1.5),
    ]

    sent = client.send(outgoing(sender))
    with pytest.raises(PermanentSendError) as refused:
        client.send(outgoing(sender))
    with pytest.raises(RetryableSendError) as limited:
        client.send(outgoing(sender))
    with pytest.raises(RetryableSendError) as down:
        client.send(outgoing(sender))
    with pytest.raises(RetryableSendError):
        client.send(outgoing(sender))

    assert sent == provider_id
    assert TOKEN not in str(refused.value)
    assert (limited.value.delay, down.value.delay) == (7.0, None)
    assert len(fake_provider.calls) == 5  # one call each: no retries inside the client


@pytest.mark.django_db
def test_meta_sends_an_approved_template_with_its_variables(tenant, fake_provider):
    client = sender_client(make_sender(tenant, "meta", fake_provider.url))
    template = {"name": "order_ready", "language": "fr", "parameters": ["Ada", "42"]}

    client.send(
        Outgoing(channel="whatsapp", to="+33612345678", text="", reference="1", template=template)
    )

    sent = fake_provider.calls[0].body
    assert sent["type"] == "template"
    assert sent["template"] == {
        "name": "order_ready",
        "language": {"code": "fr"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Ada"}, {"type": "text", "text": "42"}],
            }
        ],
    }


@pytest.mark.django_db
def test_a_sender_without_what_its_provider_needs_is_refused_per_field(tenant, settings):
    with pytest.raises(ValidationError) as refused:
        save_sender(
            tenant=tenant,
            channel=Channel.SMS,
            provider="meta",
            from_address="not a number",
        )
    assert set(refused.value.message_dict) == {"provider"}
    with pytest.raises(ValidationError) as missing:
        save_sender(tenant=tenant, channel=Channel.SMS, provider="twilio", from_address="nope")
    assert set(missing.value.message_dict) == {"from_address", "settings", "credentials"}
    settings.CONVEYOR_WEBHOOK_ALLOWED_NETWORKS = []
    with pytest.raises(ValidationError) as internal:
        save_sender(
            tenant=tenant,
            channel=Channel.SMS,
            provider="http",
            from_address="+14155550100",
            options={"url": "http://10.0.0.5/send"},
        )
    assert "private" in internal.value.message_dict["settings"][0]


@pytest.mark.django_db
def test_an_ses_sender_needs_a_region_and_its_keys_and_takes_no_endpoint_from_the_tenant(tenant):
    with pytest.raises(ValidationError) as refused:
        save_sender(
            tenant=tenant,
            channel=Channel.EMAIL,
            provider="amazon_ses",
            from_address="news@acme.example.com",
            options={"region": "evil.example.com/", "api_url": "http://127.0.0.1:4566"},
            credentials={"access_key_id": AWS_KEY_ID},
        )

    assert refused.value.message_dict == {
        "settings": [
            "Unknown setting 'api_url' for amazon_ses.",
            "region: an AWS region such as eu-west-1.",
        ],
        "credentials": ["amazon_ses needs access_key_id, secret_access_key."],
    }


@pytest.mark.django_db
def test_credentials_are_encrypted_kept_when_not_resent_and_survive_a_key_rotation(
    tenant, settings
):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CONVEYOR_SECRET_KEYS = [old]
    sender = make_sender(tenant, "twilio", "http://127.0.0.1:9")
    assert TOKEN not in sender.credentials

    save_sender(
        tenant=tenant,
        channel=Channel.SMS,
        provider="twilio",
        from_address="+14155550199",
        options={"account_sid": "AC123"},
    )
    settings.CONVEYOR_SECRET_KEYS = [new]
    with pytest.raises(CommandError):  # the old key was removed too early
        call_command("rotate_sender_credentials")
    settings.CONVEYOR_SECRET_KEYS = [new, old]
    out = io.StringIO()
    call_command("rotate_sender_credentials", stdout=out)
    settings.CONVEYOR_SECRET_KEYS = [new]

    stored = Sender.objects.get(pk=sender.pk)
    assert stored.from_address == "+14155550199"
    assert secrets.decrypt(stored.credentials) == {"auth_token": TOKEN}
    assert out.getvalue() == "re-encrypted the credentials of 1 sender(s)\n"


# --- API, admin, and where a credential must never appear --------------------------------------


@pytest.fixture
def admin_api(api_client, tenant_admin, tenant):
    _, raw = make_api_key(tenant_admin, tenant=tenant)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_TENANT=tenant.slug)
    return api_client


@pytest.mark.django_db(transaction=True)
def test_a_credential_never_appears_in_answers_pages_logs_payloads_or_errors(
    admin_api, client, tenant_admin, tenant, fake_provider, run_worker, caplog, settings
):
    caplog.set_level(logging.DEBUG)
    settings.CONVEYOR_AWS_ENDPOINT_URL = fake_provider.url
    body = {
        "provider": "twilio",
        "from_address": "+1 415 555 0100",
        "settings": {"account_sid": "AC123", "api_url": fake_provider.url},
        "credentials": {"auth_token": TOKEN},
    }
    ses = {
        "provider": "amazon_ses",
        "from_address": "news@acme.example.com",
        "settings": {"region": "eu-west-1"},
        "credentials": {"access_key_id": AWS_KEY_ID, "secret_access_key": AWS_SECRET},
    }
    saved = admin_api.put("/api/v1/senders/sms/", body, format="json")
    saved_ses = admin_api.put("/api/v1/senders/email/", ses, format="json")
    # refused, each echoing its credential (AWS never sees the secret: the access key id)
    fake_provider.script = [Answer(401), Answer(400), Answer(400), Answer(400)]
    tested = admin_api.post("/api/v1/senders/sms/test/", {"to": "+14155550123"}, format="json")
    tested_ses = admin_api.post("/api/v1/senders/email/test/", {"to": "ada@example.com"})
    message = send_message(tenant=tenant, channel=Channel.SMS, recipient="+14155550123", text="x")
    email = send_message(
        tenant=tenant, channel=Channel.EMAIL, recipient="ada@example.com", subject="s", text="x"
    )
    run_worker()
    client.force_login(tenant_admin)
    senders = Sender.objects.filter(tenant=tenant)
    pages = [
        client.get("/admin/communications/sender/").content.decode(),
        *[client.get(f"/admin/communications/sender/{s.pk}/change/").content for s in senders],
        *[
            client.get(f"/admin/communications/message/{m.pk}/change/").content
            for m in (message, email)
        ],
    ]
    answers = [
        saved.content.decode(),
        saved_ses.content.decode(),
        tested.content.decode(),
        tested_ses.content.decode(),
        admin_api.get("/api/v1/senders/").content.decode(),
        admin_api.get(f"/api/v1/messages/{message.pk}/").content.decode(),
        admin_api.get(f"/api/v1/messages/{email.pk}/").content.decode(),
    ]

    assert saved.status_code == 200, saved.json()
    assert saved.json()["credentials_stored"] == ["auth_token"]
    assert saved_ses.json()["credentials_stored"] == ["access_key_id", "secret_access_key"]
    assert tested.json()["result"].startswith("Failed: 401")
    assert tested_ses.json()["result"].startswith("Failed: The email provider refused it: 400")
    message.refresh_from_db()
    email.refresh_from_db()
    assert (message.status, email.status) == (Message.Status.FAILED, Message.Status.FAILED)
    payloads = [str(job.payload) + job.error_message for job in Job.objects.all()]
    errors = [message.error, email.error, *[s.last_test_result for s in senders]]
    everything = [*map(str, pages), *answers, *payloads, *errors, caplog.text]
    for secret in (TOKEN, AWS_SECRET, AWS_KEY_ID):
        assert all(secret not in text for text in everything), secret
    assert "[redacted]" in message.error
    assert "[redacted]" in email.error


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "allowed"),
    [("viewer", False), ("agent", False), ("admin", True), ("owner", True)],
)
def test_only_admins_and_owners_manage_senders_in_the_api_and_the_admin(
    api_client, client, tenant, role, allowed
):
    user = make_member(tenant, role, is_staff=True)
    make_sender(tenant, "twilio", "http://127.0.0.1:9")
    _, raw = make_api_key(user, tenant=tenant)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.force_login(user)

    listed = api_client.get("/api/v1/senders/")
    tested = api_client.post("/api/v1/senders/sms/test/", {"to": "+14155550123"}, format="json")
    page = client.get("/admin/communications/sender/")

    assert listed.status_code == (200 if allowed else 403)
    assert tested.status_code == (200 if allowed else 403)
    assert page.status_code == (200 if allowed else 403)


@pytest.mark.django_db
def test_a_bad_sender_answers_400_per_field_and_another_tenants_is_404(admin_api, other_tenant):
    make_sender(other_tenant, "twilio", "http://127.0.0.1:9")

    bad = admin_api.put(
        "/api/v1/senders/sms/",
        {"provider": "twilio", "from_address": "+14155550100", "settings": {}},
        format="json",
    )

    assert bad.status_code == 400
    assert set(bad.json()) >= {"settings", "credentials"}
    assert admin_api.get("/api/v1/senders/sms/").status_code == 404
    assert admin_api.get("/api/v1/senders/fax/").status_code == 404


@pytest.mark.django_db
def test_an_amazon_ses_sender_is_set_up_and_sends_its_test_from_the_admin(
    client, tenant, tenant_admin, fake_provider, settings
):
    settings.CONVEYOR_AWS_ENDPOINT_URL = fake_provider.url
    client.force_login(tenant_admin)
    form = {
        "tenant": tenant.pk,
        "channel": "email",
        "provider": "amazon_ses",
        "from_address": "news@acme.example.com",
        "settings": '{"region": "eu-west-1"}',
        "is_active": "on",
        "secret_access_key_id": AWS_KEY_ID,
        "secret_secret_access_key": AWS_SECRET,
        "secret_webhook_secret": "sns:hook-s3cret",
        "test_to": "ada@example.com",
    }

    answer = client.post("/admin/communications/sender/add/", form, follow=True)

    page = answer.content.decode()
    assert "Test: Sent to ada@example.com (provider id 0100-ses-1)." in page
    sender = Sender.objects.get(tenant=tenant)
    assert sender.provider == "amazon_ses"
    assert secrets.decrypt(sender.credentials) == {
        "access_key_id": AWS_KEY_ID,
        "secret_access_key": AWS_SECRET,
        "webhook_secret": "sns:hook-s3cret",
    }
    assert fake_provider.calls[0].path == "/v2/email/outbound-emails"
    assert AWS_SECRET not in page


def test_an_ses_account_keeps_one_boto3_client_per_process_until_its_keys_change(db, tenant):
    sender = make_sender(tenant, "amazon_ses", "")

    first, again = sender_client(sender), sender_client(sender)
    save_sender(
        tenant=tenant,
        channel=Channel.EMAIL,
        provider="amazon_ses",
        from_address="news@acme.example.com",
        options={"region": "eu-west-1"},
        credentials={"access_key_id": AWS_KEY_ID, "secret_access_key": "rotated-" + TOKEN},
    )
    rotated = sender_client(Sender.objects.get(pk=sender.pk))

    ses = [client.client.backend.client for client in (first, again, rotated)]  # type: ignore[attr-defined]
    assert ses[0] is ses[1]
    assert ses[2] is not ses[0]
    assert ses[2]._request_signer._credentials.secret_key == "rotated-" + TOKEN
