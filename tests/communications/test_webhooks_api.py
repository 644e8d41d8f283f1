"""The webhooks API: endpoints CRUD with a secret shown once, SSRF refusals, deliveries, replay."""

import base64
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import include, path
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from communications.api import webhooks as webhooks_api
from communications.models import EventType, WebhookDelivery, WebhookEndpoint
from communications.services.events import publish_event
from communications.services.webhooks import create_endpoint
from jobs.models import Job
from tenants.models import Role, Tenant
from tests.communications.webhooks_receiver import (
    Receiver,
    Reply,
    deliveries_of,
    finished,
    receiver_fixture,  # noqa: F401
    webhook_settings_fixture,  # noqa: F401
)
from tests.factories import make_member

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhook_settings")]
committed = pytest.mark.django_db(transaction=True)  # for tests that run workers

BASE = "/api/v1/webhooks"
PUBLIC_URL = "http://93.184.215.14/hooks"
Work = Callable[..., None]


@pytest.fixture
def client_as(api_client: APIClient) -> Callable[[User], APIClient]:
    def login(user: User) -> APIClient:
        api_client.force_authenticate(user)
        return api_client

    return login


@pytest.fixture
def admin_api(client_as: Callable[[User], APIClient], tenant_admin: User) -> APIClient:
    return client_as(tenant_admin)


def dead_delivery(tenant: Tenant, endpoint: WebhookEndpoint) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        tenant=tenant,
        endpoint=endpoint,
        event_id="0b5f3c52-6a43-4a43-9f77-4f3f5a2a6a11",
        event_type=EventType.CONTACT_CREATED,
        payload={"id": "x", "type": "contact.created", "data": {}},
        status=WebhookDelivery.Status.FAILED,
        attempts=10,
    )


def test_creating_an_endpoint_shows_its_secret_once(admin_api: APIClient) -> None:
    created = admin_api.post(
        f"{BASE}/endpoints/",
        {"url": PUBLIC_URL, "event_types": ["contact.created", "job.failed"]},
        format="json",
    )

    assert created.status_code == 201, created.json()
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert created.json()["legacy_signature"] is True
    assert WebhookEndpoint.objects.get(pk=created.json()["id"]).secret == secret
    shown = admin_api.get(f"{BASE}/endpoints/{created.json()['id']}/").json()
    listed = admin_api.get(f"{BASE}/endpoints/").json()["results"]
    assert "secret" not in shown
    assert shown["secret_hint"].endswith(secret[-4:])
    assert [row["id"] for row in listed] == [created.json()["id"]]
    assert secret not in str(listed)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hooks",
        "http://10.0.0.1/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/hooks",
        "http://[::1]/hooks",
        "http://private-name.test/hooks",
        "ftp://93.184.215.14/hooks",
    ],
)
def test_urls_into_our_own_network_are_refused_with_a_400_on_url(
    admin_api: APIClient, url: str, settings: Any
) -> None:
    settings.CONVEYOR_WEBHOOK_ALLOWED_NETWORKS = []
    settings.CONVEYOR_WEBHOOK_STATIC_HOSTS = {"private-name.test": ["192.168.10.20"]}

    answer = admin_api.post(f"{BASE}/endpoints/", {"url": url, "event_types": ["*"]}, format="json")

    assert answer.status_code == 400
    assert list(answer.json()) == ["url"]
    assert not WebhookEndpoint.objects.exists()


def test_changing_the_url_to_a_private_address_is_refused(
    admin_api: APIClient, tenant: Tenant, settings: Any
) -> None:
    settings.CONVEYOR_WEBHOOK_ALLOWED_NETWORKS = []
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])

    answer = admin_api.patch(
        f"{BASE}/endpoints/{endpoint.pk}/", {"url": "http://10.0.0.1/"}, format="json"
    )

    assert answer.status_code == 400
    assert "private" in answer.json()["url"][0]


def test_unknown_event_types_are_refused(admin_api: APIClient) -> None:
    answer = admin_api.post(
        f"{BASE}/endpoints/", {"url": PUBLIC_URL, "event_types": ["contact.eaten"]}, format="json"
    )

    assert answer.status_code == 400
    assert "event_types" in answer.json()


def test_an_endpoint_is_changed_and_deleted(admin_api: APIClient, tenant: Tenant) -> None:
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])

    changed = admin_api.patch(
        f"{BASE}/endpoints/{endpoint.pk}/",
        {
            "description": "CRM",
            "event_types": ["report.ready"],
            "is_active": False,
            "legacy_signature": False,
        },
        format="json",
    )
    refused = admin_api.patch(
        f"{BASE}/endpoints/{endpoint.pk}/", {"legacy_signature": "sometimes"}, format="json"
    )
    deleted = admin_api.delete(f"{BASE}/endpoints/{endpoint.pk}/")

    assert changed.status_code == 200
    assert (changed.json()["description"], changed.json()["event_types"]) == (
        "CRM",
        ["report.ready"],
    )
    assert changed.json()["is_active"] is False
    assert changed.json()["legacy_signature"] is False
    assert (refused.status_code, list(refused.json())) == (400, ["legacy_signature"])
    assert deleted.status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_rotating_the_secret_shows_the_new_one_and_keeps_the_old_for_the_grace_period(
    admin_api: APIClient, tenant: Tenant
) -> None:
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])

    answer = admin_api.post(
        f"{BASE}/endpoints/{endpoint.pk}/rotate-secret/", {"grace_seconds": 600}, format="json"
    )

    assert answer.status_code == 200
    rotated = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert answer.json()["secret"] == rotated.secret != endpoint.secret
    assert rotated.previous_secret == endpoint.secret
    assert answer.json()["previous_secret_expires_at"] is not None


@committed
def test_send_test_event_delivers_to_the_endpoint(
    admin_api: APIClient, tenant: Tenant, receiver: Receiver, work_until: Work
) -> None:
    endpoint = create_endpoint(tenant=tenant, url=receiver.url(), event_types=["contact.created"])
    receiver.secrets = [endpoint.secret]

    answer = admin_api.post(f"{BASE}/endpoints/{endpoint.pk}/test/")
    [delivery] = deliveries_of(tenant)
    work_until(finished(delivery), queues=["webhooks"])

    assert answer.status_code == 202
    assert answer.json()["event_type"] == "webhook.test"
    detail = admin_api.get(f"{BASE}/deliveries/{delivery.pk}/").json()
    assert detail["status"] == "succeeded"
    assert detail["payload"]["type"] == "webhook.test"
    assert [(a["number"], a["outcome"], a["response_code"]) for a in detail["attempt_log"]] == [
        (1, "succeeded", 200)
    ]


def test_deliveries_are_listed_and_filtered(
    admin_api: APIClient, tenant: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    first = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])
    second = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["report.ready"])
    with django_capture_on_commit_callbacks(execute=True):
        publish_event(tenant, EventType.CONTACT_CREATED, {"contact": {"id": 1}})
        publish_event(tenant, EventType.REPORT_READY, {"report": {"id": 2}})
    dead_delivery(tenant, second)

    everything = admin_api.get(f"{BASE}/deliveries/").json()["results"]
    of_first = admin_api.get(f"{BASE}/deliveries/", {"endpoint": str(first.pk)}).json()["results"]
    reports = admin_api.get(f"{BASE}/deliveries/", {"event_type": "report.ready"}).json()
    dead = admin_api.get(f"{BASE}/deliveries/", {"status": "failed"}).json()["results"]

    assert len(everything) == 4
    assert {row["event_type"] for row in of_first} == {"contact.created", "report.ready"}
    assert len(reports["results"]) == 2
    assert [(row["endpoint"], row["status"]) for row in dead] == [(str(second.pk), "failed")]
    assert admin_api.get(f"{BASE}/deliveries/", {"status": "lost"}).status_code == 400


def test_deliveries_speak_the_engines_words_and_the_previous_releases_on_request(
    admin_api: APIClient, tenant: Tenant
) -> None:
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])
    failed = dead_delivery(tenant, endpoint)
    retrying = dead_delivery(tenant, endpoint)
    WebhookDelivery.objects.filter(pk=retrying.pk).update(status=WebhookDelivery.Status.RETRYING)
    legacy = {"Conveyor-Status-Words": "legacy"}

    now = admin_api.get(f"{BASE}/deliveries/{failed.pk}/").json()["status"]
    then = admin_api.get(f"{BASE}/deliveries/{failed.pk}/", headers=legacy).json()["status"]
    old_dead = admin_api.get(f"{BASE}/deliveries/", {"status": "dead"}).json()["results"]
    old_failed = admin_api.get(f"{BASE}/deliveries/", {"status": "failed"}, headers=legacy).json()

    assert (now, then) == ("failed", "dead")
    assert [row["id"] for row in old_dead] == [str(failed.pk)]
    assert [(row["id"], row["status"]) for row in old_failed["results"]] == [
        (str(retrying.pk), "failed")
    ]


def test_listing_deliveries_takes_a_fixed_number_of_queries(
    admin_api: APIClient, tenant: Tenant, django_assert_max_num_queries: Any
) -> None:
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])
    for _ in range(20):
        dead_delivery(tenant, endpoint)

    with django_assert_max_num_queries(6):
        answer = admin_api.get(f"{BASE}/deliveries/")

    assert len(answer.json()["results"]) == 20


def test_a_dead_delivery_is_replayed_and_a_pending_one_is_refused(
    admin_api: APIClient, tenant: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])
    dead = dead_delivery(tenant, endpoint)
    with django_capture_on_commit_callbacks(execute=True):
        publish_event(tenant, EventType.CONTACT_CREATED, {"contact": {"id": 1}})
    pending = WebhookDelivery.objects.get(status=WebhookDelivery.Status.PENDING)

    replayed = admin_api.post(f"{BASE}/deliveries/{dead.pk}/replay/")
    refused = admin_api.post(f"{BASE}/deliveries/{pending.pk}/replay/")

    assert replayed.status_code == 202
    assert replayed.json()["status"] == "pending"
    job = Job.objects.get(pk=replayed.json()["job"])
    assert (job.kind, job.payload) == (
        "communications.deliver_webhook",
        {"delivery_id": str(dead.pk)},
    )
    assert refused.status_code == 409


def test_replaying_a_delivery_of_a_disabled_endpoint_is_refused(
    admin_api: APIClient, tenant: Tenant
) -> None:
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"], is_active=False)
    dead = dead_delivery(tenant, endpoint)

    answer = admin_api.post(f"{BASE}/deliveries/{dead.pk}/replay/")

    assert answer.status_code == 409
    assert "disabled" in answer.json()["detail"]


@committed
def test_bulk_replay_sends_the_dead_deliveries_the_filters_match_and_works_them_off(
    admin_api: APIClient, tenant: Tenant, receiver: Receiver, work_until: Work
) -> None:
    endpoint = create_endpoint(tenant=tenant, url=receiver.url(), event_types=["*"])
    other = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])
    receiver.secrets = [endpoint.secret]
    mine = [dead_delivery(tenant, endpoint) for _ in range(3)]
    dead_delivery(tenant, other)

    answer = admin_api.post(
        f"{BASE}/deliveries/replay/", {"endpoint": str(endpoint.pk)}, format="json"
    )
    work_until(finished(*mine), queues=["webhooks"])

    assert answer.json() == {"replayed": 3, "skipped": 0}
    assert len(receiver.requests) == 3
    assert all(request.verified for request in receiver.requests)
    assert WebhookDelivery.objects.filter(endpoint=other, status="failed").count() == 1


def test_bulk_replay_skips_what_is_still_being_sent(
    admin_api: APIClient, tenant: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])
    dead = dead_delivery(tenant, endpoint)
    with django_capture_on_commit_callbacks(execute=True):
        publish_event(tenant, EventType.CONTACT_CREATED, {"contact": {"id": 1}})
    pending = WebhookDelivery.objects.get(status=WebhookDelivery.Status.PENDING)

    answer = admin_api.post(
        f"{BASE}/deliveries/replay/",
        {"ids": [str(dead.pk), str(pending.pk)], "status": "succeeded"},
        format="json",
    )

    assert answer.json() == {"replayed": 0, "skipped": 0}
    answer = admin_api.post(
        f"{BASE}/deliveries/replay/", {"ids": [str(dead.pk), str(pending.pk)]}, format="json"
    )
    assert answer.json() == {"replayed": 1, "skipped": 0}


def test_another_tenants_endpoints_and_deliveries_are_404(
    admin_api: APIClient, other_tenant: Tenant
) -> None:
    theirs = create_endpoint(tenant=other_tenant, url=PUBLIC_URL, event_types=["*"])
    delivery = dead_delivery(other_tenant, theirs)

    answers = [
        admin_api.get(f"{BASE}/endpoints/{theirs.pk}/"),
        admin_api.patch(f"{BASE}/endpoints/{theirs.pk}/", {"description": "x"}, format="json"),
        admin_api.delete(f"{BASE}/endpoints/{theirs.pk}/"),
        admin_api.post(f"{BASE}/endpoints/{theirs.pk}/rotate-secret/"),
        admin_api.post(f"{BASE}/endpoints/{theirs.pk}/test/"),
        admin_api.get(f"{BASE}/deliveries/{delivery.pk}/"),
        admin_api.post(f"{BASE}/deliveries/{delivery.pk}/replay/"),
        admin_api.get(f"{BASE}/deliveries/", {"endpoint": str(theirs.pk)}),
    ]

    assert [answer.status_code for answer in answers] == [404] * len(answers)
    assert admin_api.get(f"{BASE}/endpoints/").json()["results"] == []
    assert admin_api.get(f"{BASE}/deliveries/").json()["results"] == []
    bulk = admin_api.post(f"{BASE}/deliveries/replay/", {"ids": [str(delivery.pk)]}, format="json")
    assert bulk.json() == {"replayed": 0, "skipped": 0}
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == "failed"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.AGENT])
def test_members_below_admin_are_refused(
    client_as: Callable[[User], APIClient], tenant: Tenant, role: str
) -> None:
    api = client_as(make_member(tenant, role))

    answers = [
        api.get(f"{BASE}/endpoints/"),
        api.post(f"{BASE}/endpoints/", {"url": PUBLIC_URL, "event_types": ["*"]}, format="json"),
        api.get(f"{BASE}/deliveries/"),
    ]

    assert [answer.status_code for answer in answers] == [403, 403, 403]


def test_the_schema_documents_the_webhook_operations() -> None:
    generator = SchemaGenerator(patterns=[path("api/v1/", include(webhooks_api.urlpatterns))])

    schema = generator.get_schema(request=None, public=True)

    operations = {
        operation["operationId"] for item in schema["paths"].values() for operation in item.values()
    }
    assert "/api/v1/webhooks/endpoints/{id}/rotate-secret/" in schema["paths"]
    assert {"webhook_deliveries_bulk_replay", "webhook_endpoints_test"} <= operations
    assert "secret" in schema["components"]["schemas"]["WebhookEndpointSecretOutput"]["properties"]


@committed
def test_a_replay_of_a_dead_delivery_to_a_still_broken_receiver_logs_more_attempts(
    admin_api: APIClient, tenant: Tenant, receiver: Receiver, work_until: Work, settings: Any
) -> None:
    endpoint = create_endpoint(tenant=tenant, url=receiver.url(), event_types=["*"])
    receiver.secrets = [endpoint.secret]
    receiver.default = Reply(404, b"no such hook")
    dead = dead_delivery(tenant, endpoint)

    admin_api.post(f"{BASE}/deliveries/{dead.pk}/replay/")
    work_until(finished(dead), queues=["webhooks"])

    detail = admin_api.get(f"{BASE}/deliveries/{dead.pk}/").json()
    assert (detail["status"], detail["attempts"], detail["last_response_code"]) == (
        "failed",
        11,
        404,
    )
    assert detail["attempt_log"][-1]["response_excerpt"] == "no such hook"
