"""The webhooks admin: pages, the secret shown once, rotate / test / replay actions, scoping."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from communications.models import EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from communications.services.webhooks import create_endpoint
from tenants.models import Role, Tenant
from tests.communications.webhooks_receiver import webhook_settings_fixture  # noqa: F401
from tests.factories import make_member

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhook_settings")]

PUBLIC_URL = "http://93.184.215.14/hooks"


def url(model: str, view: str, *args: object) -> str:
    return reverse(f"admin:communications_{model}_{view}", args=args)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def delivery_with_attempts(tenant: Tenant, endpoint: WebhookEndpoint) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.create(
        tenant=tenant,
        endpoint=endpoint,
        event_id="0b5f3c52-6a43-4a43-9f77-4f3f5a2a6a11",
        event_type=EventType.CONTACT_CREATED,
        payload={"id": "x", "type": "contact.created", "data": {"contact": {"id": 4}}},
        status=WebhookDelivery.Status.FAILED,
        attempts=1,
        last_response_code=400,
    )
    WebhookAttempt.objects.create(
        tenant=tenant,
        delivery=delivery,
        number=1,
        started_at=delivery.created_at,
        duration_ms=12,
        outcome=WebhookAttempt.Outcome.FAILED,
        response_code=400,
        response_excerpt="unknown contact",
    )
    return delivery


@pytest.mark.parametrize(
    ("model", "view"),
    [
        ("webhookendpoint", "changelist"),
        ("webhookendpoint", "add"),
        ("webhookdelivery", "changelist"),
    ],
)
def test_the_webhook_pages_open(
    admin_client: Client, tenant: Tenant, model: str, view: str
) -> None:
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])
    delivery_with_attempts(tenant, endpoint)

    assert admin_client.get(url(model, view)).status_code == 200


def test_an_endpoint_page_and_a_delivery_page_with_its_attempts_open(
    admin_client: Client, tenant: Tenant
) -> None:
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])
    delivery = delivery_with_attempts(tenant, endpoint)

    endpoint_page = admin_client.get(url("webhookendpoint", "change", endpoint.pk))
    delivery_page = admin_client.get(url("webhookdelivery", "change", delivery.pk))

    assert endpoint_page.status_code == 200
    assert endpoint.secret not in endpoint_page.content.decode()
    assert delivery_page.status_code == 200
    assert "unknown contact" in delivery_page.content.decode()


def test_adding_an_endpoint_shows_its_secret_once(tenant: Tenant, tenant_admin: User) -> None:
    client = client_for(tenant_admin)

    response = client.post(
        url("webhookendpoint", "add"),
        {
            "tenant": tenant.pk,
            "url": PUBLIC_URL,
            "event_types": ["contact.created"],
            "is_active": "on",
        },
        follow=True,
    )

    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["contact.created"]
    assert any(endpoint.secret in message for message in messages_of(response))
    page = client.get(url("webhookendpoint", "change", endpoint.pk))
    assert endpoint.secret not in page.content.decode()


def test_the_add_form_refuses_a_private_url(
    tenant: Tenant, tenant_admin: User, settings: Any
) -> None:
    settings.CONVEYOR_WEBHOOK_ALLOWED_NETWORKS = []

    response = client_for(tenant_admin).post(
        url("webhookendpoint", "add"),
        {"tenant": tenant.pk, "url": "http://169.254.169.254/", "event_types": ["*"]},
    )

    assert response.status_code == 200
    assert "link-local" in str(response.context["adminform"].form.errors["url"])
    assert not WebhookEndpoint.objects.exists()


def test_rotate_action_shows_the_new_secret(tenant: Tenant, tenant_admin: User) -> None:
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])

    response = client_for(tenant_admin).post(
        url("webhookendpoint", "changelist"),
        {"action": "rotate_secret_selected", "_selected_action": [endpoint.pk]},
        follow=True,
    )

    rotated = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert rotated.previous_secret == endpoint.secret
    assert any(rotated.secret in message for message in messages_of(response))


def test_send_test_action_creates_a_test_delivery(tenant: Tenant, tenant_admin: User) -> None:
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["report.ready"])

    client_for(tenant_admin).post(
        url("webhookendpoint", "changelist"),
        {"action": "send_test_selected", "_selected_action": [endpoint.pk]},
    )

    [delivery] = WebhookDelivery.objects.all()
    assert (delivery.endpoint_id, delivery.event_type) == (endpoint.pk, "webhook.test")


def test_replay_action_replays_dead_deliveries(tenant: Tenant, tenant_admin: User) -> None:
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])
    delivery = delivery_with_attempts(tenant, endpoint)

    response = client_for(tenant_admin).post(
        url("webhookdelivery", "changelist"),
        {"action": "replay_selected", "_selected_action": [delivery.pk]},
        follow=True,
    )

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert delivery.job is not None
    assert "Replayed 1 delivery(ies)." in messages_of(response)


def test_staff_see_only_their_tenants_webhooks_and_agents_none(
    tenant: Tenant, other_tenant: Tenant, tenant_admin: User
) -> None:
    mine = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])
    theirs = create_endpoint(tenant=other_tenant, url=PUBLIC_URL, event_types=["*"])
    their_delivery = delivery_with_attempts(other_tenant, theirs)
    agent = make_member(tenant, Role.AGENT, username="staff-agent", is_staff=True)
    client = client_for(tenant_admin)

    listing = client.get(url("webhookendpoint", "changelist"))

    assert list(listing.context["cl"].queryset) == [mine]
    assert client.get(url("webhookendpoint", "change", theirs.pk)).status_code == 302
    assert client.get(url("webhookdelivery", "change", their_delivery.pk)).status_code == 302
    assert client_for(agent).get(url("webhookendpoint", "changelist")).status_code == 403


def test_a_delivery_page_offers_replay_and_an_endpoint_page_rotate(
    tenant: Tenant, tenant_admin: User
) -> None:
    endpoint = create_endpoint(tenant=tenant, url=PUBLIC_URL, event_types=["*"])
    delivery = delivery_with_attempts(tenant, endpoint)
    client = client_for(tenant_admin)
    page = url("webhookdelivery", "change", delivery.pk)

    assert 'name="CHANGE_FORM-action"' in client.get(page).content.decode()
    client.post(page, {"CHANGE_FORM-action": "replay_selected", "_selected_action": delivery.pk})
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == WebhookDelivery.Status.PENDING

    endpoint_page = url("webhookendpoint", "change", endpoint.pk)
    client.post(
        endpoint_page,
        {"CHANGE_FORM-action": "rotate_secret_selected", "_selected_action": endpoint.pk},
    )
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).previous_secret == endpoint.secret
