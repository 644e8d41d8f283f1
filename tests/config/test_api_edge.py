"""The API's edge as a hostile client meets it: malformed JSON, NUL in queries, unknown URLs,
guessed API keys and admin passwords, and a template built to render for minutes."""

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from communications.models import Contact
from communications.services.templates import create_template
from jobs.models import Job
from tenants.models import Role, Tenant
from tests.factories import PASSWORD, make_api_key, make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent_api(tenant: Tenant, agent: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(agent)
    client.credentials(HTTP_X_TENANT=tenant.slug)
    return client


def post_raw(client: APIClient, path: str, body: str) -> Any:
    data: Any = body.encode("utf-8", "surrogatepass")
    return client.generic("POST", path, data, "application/json")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"kind": "jobs.noop", "payload": {"note": "a\\u0000b"}}', "NUL"),
        ('{"kind": "jobs.noop", "payload": {"a\\u0000": 1}}', "NUL"),
        ('{"kind": "jobs.noop", "payload": {"note": "\\ud800"}}', "surrogate"),
        ('{"kind": "jobs.noop", "payload": {"n": 1e999}}', "finite"),
        ('{"kind": "jobs.noop", "payload": {"n": NaN}}', "finite"),
        ('{"kind": "jobs.noop", "payload": {"n": -Infinity}}', "finite"),
        ('{"kind": "jobs.noop", "payload": ' + "[" * 5000 + "]" * 5000 + "}", "nested"),
        ('{"kind": "jobs.noop", "payload": ' + '{"a":' * 100 + "1" + "}" * 101, "nested"),
        ('{"kind": "jobs.noop", "payload": {"n": 1', "JSON parse error"),
    ],
)
def test_malformed_json_is_a_400_naming_the_problem(agent_api, body, says):
    response = post_raw(agent_api, "/api/v1/jobs/", body)

    assert response.status_code == 400
    assert says in response.json()["detail"]
    assert not Job.objects.exists()


def test_nul_in_a_jsonb_field_of_any_endpoint_is_a_400(agent_api):
    response = agent_api.post(
        "/api/v1/contacts/",
        {"email": "a@example.com", "custom_fields": {"note": "x\x00y"}},
        format="json",
    )

    assert response.status_code == 400
    assert not Contact.objects.exists()


def test_an_email_subject_with_a_line_break_is_a_400_not_a_failed_send_later(agent_api):
    body = {
        "channel": "email",
        "recipient": "a@example.com",
        "subject": "Hi\r\nBcc: everyone@example.com",
        "text": "Hello",
    }

    response = agent_api.post("/api/v1/messages/", body, format="json")

    assert response.status_code == 400
    assert response.json() == {"subject": ["A subject is one line: no line breaks."]}
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "path",
    ["/api/v1/messages/?status=%00", "/api/v1/messages/?channel=a%00", "/api/v1/jobs/?type=%00"],
)
def test_nul_in_a_query_is_a_400(agent_api, path):
    response = agent_api.get(path)

    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize("debug", [False, True])
def test_an_unknown_api_url_answers_json_404_in_every_mode(agent_api, settings, debug):
    settings.DEBUG = debug

    response = agent_api.get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_a_template_built_to_render_for_minutes_is_a_400_naming_the_budget(tenant, viewer):
    client = APIClient()
    client.force_authenticate(viewer)
    client.credentials(HTTP_X_TENANT=tenant.slug)
    loop = "{% for a in xs %}{% for b in xs %}{% for c in xs %}{{ a }}{{ b }}{{ c }}"
    body = {"name": "order-shipped", "channel": "sms", "variables": {"xs": list(range(200))}}
    create_template(
        tenant=tenant,
        name="order-shipped",
        channel="sms",
        body=loop + "{% endfor %}{% endfor %}{% endfor %}",
        sample_variables={"xs": [1]},
    )

    response = client.post("/api/v1/templates/preview/", body, format="json")

    assert response.status_code == 400
    assert "render budget" in json.dumps(response.json())
    assert "10,000" in json.dumps(response.json())


# --- Failed sign-ins ------------------------------------------------------------------------------


@pytest.fixture
def strict_logins(settings: Any) -> None:
    settings.CONVEYOR_FAILED_LOGINS = {"per_client": 6, "per_account": 3, "window_seconds": 60}


def test_guessing_api_keys_is_throttled_per_client_and_never_locks_the_owner_out(
    tenant, agent, strict_logins
):
    _, raw = make_api_key(agent, tenant=tenant)
    wrong = raw[:-4] + "xxxx"
    attacker = APIClient(REMOTE_ADDR="203.0.113.9")
    attacker.credentials(HTTP_AUTHORIZATION=f"Bearer {wrong}")

    answers = [attacker.get("/api/v1/jobs/").status_code for _ in range(4)]
    owner = APIClient(REMOTE_ADDR="198.51.100.7")
    owner.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    locked = attacker.get("/api/v1/jobs/")

    assert answers == [401, 401, 401, 429]
    assert int(locked["Retry-After"]) >= 1
    assert owner.get("/api/v1/jobs/").status_code == 200


def test_guessing_admin_passwords_is_throttled_and_another_client_still_signs_in(
    tenant, strict_logins
):
    make_member(tenant, Role.ADMIN, username="adam", is_staff=True)
    url = reverse("admin:login")
    attacker = Client(REMOTE_ADDR="203.0.113.9")

    answers = [
        attacker.post(url, {"username": "adam", "password": "guess"}).status_code for _ in range(4)
    ]
    blocked = attacker.post(url, {"username": "adam", "password": PASSWORD})
    owner = Client(REMOTE_ADDR="198.51.100.7").post(url, {"username": "adam", "password": PASSWORD})

    assert answers == [200, 200, 200, 429]
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) >= 1
    assert owner.status_code == 302
