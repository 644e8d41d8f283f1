"""Single sends: rendered at request time, queued, sent once by a real worker, never twice."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core import mail

from communications.models import Channel, Contact, Message
from communications.providers import fail_next, memory_outbox, reject, retry_after
from communications.services.messages import deliver, send_message, send_template_email
from communications.services.notifications import notify_user
from jobs.models import Job
from jobs.runtime.runner import settle_interrupted
from jobs.services.jobs import cancel_job
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def memory_provider(settings) -> None:
    """SMS and WhatsApp go to the memory provider, whatever the environment says."""
    settings.CONVEYOR_MESSAGING = {
        channel: {**config, "PROVIDER": "memory"}
        for channel, config in settings.CONVEYOR_MESSAGING.items()
    }


def contact(tenant, **fields: Any) -> Contact:
    defaults = {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+14155550123"}
    return Contact.objects.create(tenant=tenant, **{**defaults, **fields})


def status_of(message: Message) -> tuple[str, str]:
    message.refresh_from_db()
    job_status = Job.objects.values_list("status", flat=True).get(pk=str(message.job_id))
    return message.status, job_status


# --- Services and kinds ------------------------------------------------------------------------


def test_an_sms_to_a_contact_is_rendered_queued_and_sent_once(tenant, agent, run_worker):
    ada = contact(tenant)

    message = send_message(
        tenant=tenant, channel=Channel.SMS, template="welcome", contact=ada, by=agent
    )
    run_worker()

    assert status_of(message) == ("sent", "succeeded")
    assert message.text.startswith("Hi Ada, welcome to Acme!")
    assert message.provider_message_id == f"memory-{message.pk}"
    assert message.attempts == 1
    assert [(m["to"], m["text"]) for m in memory_outbox()] == [("+14155550123", message.text)]


def test_a_template_email_goes_out_through_djangos_mailer_with_text_and_html(tenant, run_worker):
    message = send_template_email(
        tenant=tenant, to="Grace@Example.com", template="welcome", context={}
    )
    run_worker()

    assert status_of(message) == ("sent", "succeeded")
    [email] = mail.outbox
    assert email.to == ["grace@example.com"]
    assert email.subject == "Welcome to Acme"
    assert "Thank you for joining Acme" in email.body
    assert email.alternatives[0].mimetype == "text/html"  # type: ignore[attr-defined]
    assert message.provider_message_id == email.extra_headers["Message-ID"]


def test_notify_user_with_an_email_template_sends_that_email(tenant, agent, run_worker):
    notify_user(
        agent,
        tenant=tenant,
        title="Report ready",
        email_template="report-ready",
        context={"report": {"name": "October"}},
    )
    run_worker()

    [email] = mail.outbox
    assert email.to == [agent.email]
    assert "October" in email.subject
    assert Message.objects.get().status == Message.Status.SENT


def test_a_retry_sends_only_what_was_not_sent(tenant, run_worker, work_until):
    fail_next("+14155550123", times=1, retry_after=0)
    message = send_message(
        tenant=tenant, channel=Channel.SMS, recipient="+1 415 555 0123", text="Hi"
    )

    work_until(lambda: status_of(message)[1] == Job.Status.SUCCEEDED)

    message.refresh_from_db()
    assert (message.status, message.attempts) == (Message.Status.SENT, 2)
    assert len(memory_outbox()) == 1
    assert Job.objects.get(pk=str(message.job_id)).attempt == 2


def test_a_refused_message_fails_at_once_with_the_providers_reason(tenant, run_worker):
    reject("+14155550123")
    message = send_message(
        tenant=tenant, channel=Channel.WHATSAPP, recipient="+14155550123", text="x"
    )

    run_worker()

    assert status_of(message) == ("failed", "failed")
    assert "400" in message.error
    assert Job.objects.get(pk=str(message.job_id)).attempt == 1
    assert memory_outbox() == []


def test_a_message_already_sent_is_not_sent_again(tenant, run_worker):
    message = send_message(tenant=tenant, channel=Channel.SMS, recipient="+14155550123", text="x")
    run_worker()
    message.refresh_from_db()

    again = deliver(message)

    assert again.status == Message.Status.SENT
    assert len(memory_outbox()) == 1
    message.refresh_from_db()
    assert message.attempts == 1


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_a_message_whose_attempt_died_mid_send_is_failed_not_sent_twice(tenant):
    message = send_message(tenant=tenant, channel=Channel.SMS, recipient="+14155550123", text="x")
    Message.objects.filter(pk=message.pk).update(status=Message.Status.SENDING, attempts=1)

    outcome = deliver(message)

    assert outcome.status == Message.Status.FAILED
    assert "Outcome unknown" in outcome.error
    assert memory_outbox() == []


def test_an_opted_out_contact_at_send_time_is_skipped(tenant, run_worker):
    ada = contact(tenant)
    message = send_message(tenant=tenant, channel=Channel.SMS, contact=ada, text="x")
    Contact.objects.filter(pk=ada.pk).update(opted_out=True)

    run_worker()

    assert status_of(message) == ("skipped", "succeeded")
    assert memory_outbox() == []


# --- The HTTP provider against a receiver on 127.0.0.1 ---------------------------------------


class Receiver:
    """A provider's endpoint: answers each request with the next scripted (status, headers),
    or, for a number in `down_for`, 503 as many times as it says; else 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        self.down_for: dict[str, int] = {}
        self.lock = threading.Lock()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", 0))
        body = json.loads(handler.rfile.read(length))
        with self.lock:
            self.requests.append({"headers": dict(handler.headers), "body": body})
            status, headers = self._next(body["to"])
            self.requests[-1]["status"] = status
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        handler.wfile.write(json.dumps({"id": f"prov-{len(self.requests)}"}).encode())

    def _next(self, to: str) -> tuple[int, dict[str, str]]:
        if self.down_for.get(to):
            self.down_for[to] -= 1
            return 503, {"Retry-After": "0"}
        return self.script.pop(0) if self.script else (200, {})

    def sent_to(self, to: str) -> list[int]:
        """The statuses this receiver answered for `to`, in order."""
        return [r["status"] for r in self.requests if r["body"]["to"] == to]


@contextmanager
def http_receiver(settings: Any) -> Iterator[Receiver]:
    """A receiver thread on 127.0.0.1, set as the SMS provider's URL while the block runs."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state.answer(self)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.CONVEYOR_MESSAGING = {
        **settings.CONVEYOR_MESSAGING,
        "sms": {
            "PROVIDER": "http",
            "URL": f"http://127.0.0.1:{server.server_port}/send",
            "AUTH_HEADER": "Bearer s3cret",
            "FROM": "+15005550006",
            "TIMEOUT": 5,
        },
    }
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    with http_receiver(settings) as state:
        yield state


def test_the_http_provider_posts_json_and_honours_retry_after_on_503(tenant, receiver, work_until):
    receiver.script = [(503, {"Retry-After": "1"})]
    message = send_message(tenant=tenant, channel=Channel.SMS, recipient="+14155550123", text="Hi")

    work_until(lambda: status_of(message)[1] == Job.Status.SUCCEEDED)

    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == ("sent", "prov-2")
    first, second = receiver.requests
    assert (
        first["body"]
        == second["body"]
        == {
            "channel": "sms",
            "to": "+14155550123",
            "from": "+15005550006",
            "body": "Hi",
            "reference": str(message.pk),
        }
    )
    assert second["headers"]["Authorization"] == "Bearer s3cret"
    assert second["headers"]["Idempotency-Key"] == str(message.pk)
    retry = Job.objects.get(pk=str(message.job_id)).logs.get(event="retry_scheduled")
    assert retry.data["delay"] == 1


def test_the_http_provider_fails_a_4xx_for_good(tenant, receiver, run_worker):
    receiver.script = [(422, {})]
    message = send_message(tenant=tenant, channel=Channel.SMS, recipient="+14155550123", text="Hi")

    run_worker()

    assert status_of(message) == ("failed", "failed")
    assert message.error.startswith("422")
    assert len(receiver.requests) == 1


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after("7") == 7.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after("soon") is None


# --- API ----------------------------------------------------------------------------------------


@pytest.fixture
def agent_client(api_client, agent, tenant):
    _, raw = make_api_key(agent, tenant=tenant)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api_client


def test_post_messages_queues_a_send_and_the_detail_shows_it_and_its_job(
    agent_client, tenant, run_worker
):
    ada = contact(tenant)

    answer = agent_client.post(
        "/api/v1/messages/",
        {"channel": "sms", "template": "welcome", "contact": ada.pk},
        format="json",
    )
    run_worker()
    detail = agent_client.get(f"/api/v1/messages/{answer.data['id']}/")

    assert answer.status_code == 202
    assert answer.data["status"] == "queued"
    assert detail.status_code == 200
    assert detail.data["status"] == "sent"
    assert detail.data["job"]["status"] == "succeeded"
    assert detail.data["job"]["kind"] == "communications.send_sms"


@pytest.mark.django_db  # no worker needed: rolled back, not committed
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "sms", "template": "no-such-thing", "recipient": "+14155550123"}, "template"),
        ({"channel": "email", "template": "password-reset", "recipient": "a@b.co"}, "template"),
        ({"channel": "sms", "text": "hi", "recipient": "not a number"}, "recipient"),
        ({"channel": "email", "text": "hi", "subject": "s", "recipient": "nope@"}, "recipient"),
        ({"channel": "sms", "recipient": "+14155550123"}, "text"),
        ({"channel": "fax", "text": "hi", "recipient": "+14155550123"}, "channel"),
        ({"channel": "sms", "text": "hi"}, "recipient"),
        ({"channel": "sms", "text": "hi", "contact": 999999}, "contact"),
    ],
)
def test_bad_sends_answer_400_naming_the_field_and_queue_nothing(agent_client, body, field):
    answer = agent_client.post("/api/v1/messages/", body, format="json")

    assert answer.status_code == 400, answer.data
    assert field in answer.data
    assert not Message.objects.exists()


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_a_missing_variable_is_named_in_the_400(agent_client):
    answer = agent_client.post(
        "/api/v1/messages/",
        {"channel": "sms", "template": "password-reset", "recipient": "+14155550123"},
        format="json",
    )

    assert answer.status_code == 400
    assert "reset_url" in str(answer.data["template"])


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_an_opted_out_contact_or_their_address_answers_400(agent_client, tenant):
    ada = contact(tenant, opted_out=True)

    by_contact = agent_client.post(
        "/api/v1/messages/", {"channel": "sms", "text": "hi", "contact": ada.pk}, format="json"
    )
    by_address = agent_client.post(
        "/api/v1/messages/",
        {"channel": "email", "text": "hi", "subject": "s", "recipient": "ADA@example.com"},
        format="json",
    )

    assert (by_contact.status_code, by_address.status_code) == (400, 400)
    assert "opted out" in str(by_contact.data["contact"])
    assert not Message.objects.exists()


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_viewers_may_list_but_not_send(api_client, viewer, tenant):
    _, raw = make_api_key(viewer, tenant=tenant)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    sent = api_client.post(
        "/api/v1/messages/", {"channel": "sms", "text": "x", "recipient": "+14155550123"}
    )
    listed = api_client.get("/api/v1/messages/")

    assert (sent.status_code, listed.status_code) == (403, 200)


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_the_list_filters_and_another_tenants_message_is_404(
    agent_client, tenant, other_tenant, django_assert_num_queries
):
    sms = send_message(tenant=tenant, channel=Channel.SMS, recipient="+14155550123", text="x")
    send_message(tenant=tenant, channel=Channel.WHATSAPP, recipient="+14155550124", text="y")
    theirs = send_message(
        tenant=other_tenant, channel=Channel.SMS, recipient="+14155550123", text="z"
    )

    with django_assert_num_queries(3):  # key with its role, its last use, the page
        page = agent_client.get("/api/v1/messages/?channel=sms&status=queued")

    assert [row["id"] for row in page.data["results"]] == [sms.pk]
    assert agent_client.get(f"/api/v1/messages/{theirs.pk}/").status_code == 404
    assert agent_client.get("/api/v1/messages/abc/").status_code == 404


# --- Admin --------------------------------------------------------------------------------------


@pytest.mark.django_db  # no worker needed: rolled back, not committed
def test_the_message_admin_lists_and_shows_messages_read_only(client, tenant_admin, tenant):
    message = send_message(tenant=tenant, channel=Channel.SMS, recipient="+14155550123", text="x")
    client.force_login(tenant_admin)

    listed = client.get("/admin/communications/message/")
    shown = client.get(f"/admin/communications/message/{message.pk}/change/")

    assert (listed.status_code, shown.status_code) == (200, 200)
    assert "+14155550123" in listed.content.decode()
    assert client.get("/admin/communications/message/add/").status_code == 403


def test_canceling_a_waiting_send_job_cancels_its_message(tenant):
    message = send_message(tenant=tenant, channel=Channel.SMS, recipient="+14155550123", text="x")

    cancel_job(Job.objects.get(pk=str(message.job_id)))

    assert status_of(message) == (Message.Status.CANCELED, Job.Status.CANCELED)
    assert memory_outbox() == []


def test_a_send_job_failed_by_a_rescue_fails_the_message_it_was_sending(tenant):
    message = send_message(tenant=tenant, channel=Channel.SMS, recipient="+14155550123", text="x")
    job = Job.objects.get(pk=str(message.job_id))
    Job.objects.filter(pk=job.pk).update(status=Job.Status.STARTED, attempt=job.max_attempts)
    Message.objects.filter(pk=message.pk).update(status=Message.Status.SENDING, attempts=1)

    settle_interrupted(str(job.pk), reason="its worker stopped answering")

    assert status_of(message) == (Message.Status.FAILED, Job.Status.FAILED)
    assert "Outcome unknown" in message.error
