"""Contacts: normalising, validation, duplicates, and the API's CRUD, search, filters and roles."""

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from communications.models import Contact, WebhookDelivery, WebhookEndpoint
from communications.services import contacts as contact_services
from communications.services.contacts import create_contact, delete_contact, update_contact
from tenants.models import Role, Tenant
from tests.factories import MembershipFactory, make_member

pytestmark = pytest.mark.django_db

LIST = "/api/v1/contacts/"


def detail(contact: Contact) -> str:
    return f"{LIST}{contact.pk}/"


def client_as(user: Any, tenant: Tenant) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    client.credentials(HTTP_X_TENANT=tenant.slug)
    return client


@pytest.fixture
def agent_api(tenant: Tenant, agent: Any) -> APIClient:
    return client_as(agent, tenant)


def add(tenant: Tenant, **fields: Any) -> Contact:
    return create_contact(tenant=tenant, **fields)


# --- Services -----------------------------------------------------------------------------------


def test_email_is_lowercased_and_phone_stored_in_e164_with_the_tenants_region(tenant):
    tenant.default_region = "GB"
    tenant.save()

    contact = add(
        tenant, name="  Ada   Lovelace ", email=" Ada@Example.COM ", phone="020 7946 0018"
    )

    contact.refresh_from_db()
    assert (contact.name, contact.email, contact.phone) == (
        "Ada Lovelace",
        "ada@example.com",
        "+442079460018",
    )


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"email": "not-an-address"}, {"email": ["Enter a valid email address."]}),
        (
            {"phone": "12"},
            {"phone": ["'12' is not a valid phone number for region US."]},
        ),
        (
            {"name": "No way to reach me"},
            {
                "email": ["Give an email address, a phone number or both."],
                "phone": ["Give an email address, a phone number or both."],
            },
        ),
        (
            {"email": "a@example.com", "custom_fields": ["x"]},
            {"custom_fields": ['Give an object, e.g. {"plan": "pro"}.']},
        ),
        (
            {"email": "a@example.com", "tags": ["x" * 51]},
            {"tags": [f"Keep each tag to 50 characters: {'x' * 51!r} is longer."]},
        ),
    ],
)
def test_invalid_contacts_are_refused_with_a_message_per_field(tenant, fields, errors):
    with pytest.raises(ValidationError) as error:
        add(tenant, **fields)

    assert error.value.message_dict == errors
    assert not Contact.objects.exists()


def test_an_email_or_phone_already_in_the_tenant_is_refused_but_not_across_tenants(
    tenant, other_tenant
):
    add(tenant, email="ada@example.com", phone="+14155550123")
    add(other_tenant, email="ada@example.com", phone="+14155550123")

    with pytest.raises(ValidationError) as error:
        add(tenant, email="ADA@example.com", phone="(415) 555-0123")

    assert error.value.message_dict == {
        "email": ["Another contact of this tenant already has this email address."],
        "phone": ["Another contact of this tenant already has this phone number."],
    }


def test_tags_are_trimmed_and_kept_once(tenant):
    contact = add(tenant, email="a@example.com", tags=[" vip ", "vip", "", "newsletter"])

    assert contact.tags == ["vip", "newsletter"]


def test_an_update_changes_only_what_it_is_given_and_a_refused_one_changes_nothing(tenant):
    add(tenant, email="taken@example.com")
    contact = add(tenant, name="Ada", email="ada@example.com", company="Engines")

    with pytest.raises(ValidationError):
        update_contact(contact, email="taken@example.com")
    update_contact(contact, name="Ada Lovelace")

    contact.refresh_from_db()
    assert (contact.name, contact.email, contact.company) == (
        "Ada Lovelace",
        "ada@example.com",
        "Engines",
    )


def test_removing_the_only_way_to_reach_a_contact_is_refused(tenant):
    contact = add(tenant, email="ada@example.com")

    with pytest.raises(ValidationError):
        update_contact(contact, email="")


def test_delete_removes_the_contact(tenant):
    contact = add(tenant, email="ada@example.com")

    delete_contact(contact)

    assert not Contact.objects.exists()


# --- API: create, read, change, delete ----------------------------------------------------------


def test_an_agent_creates_a_contact_and_reads_it_back(agent_api, agent):
    response = agent_api.post(
        LIST,
        {
            "name": "Ada Lovelace",
            "email": "Ada@Example.com",
            "phone": "+1 415 555 0123",
            "company": "Engines",
            "tags": ["vip"],
            "custom_fields": {"plan": "pro"},
        },
        format="json",
    )

    body = response.json()
    contact = Contact.objects.get()
    assert response.status_code == 201
    assert body["id"] == contact.pk
    assert (body["email"], body["phone"], body["source"], body["created_by"]) == (
        "ada@example.com",
        "+14155550123",
        "api",
        agent.username,
    )
    assert agent_api.get(detail(contact)).json() == body


def test_a_duplicate_is_a_400_naming_the_field(agent_api, tenant):
    add(tenant, email="ada@example.com")

    response = agent_api.post(LIST, {"email": "ada@example.com"}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "email": ["Another contact of this tenant already has this email address."]
    }


def test_a_bad_phone_is_a_400_naming_the_field(agent_api):
    response = agent_api.post(LIST, {"phone": "hello"}, format="json")

    assert response.status_code == 400
    assert response.json() == {"phone": ["'hello' is not a phone number."]}


def test_patch_changes_the_given_fields_and_put_replaces_them_all(agent_api, tenant):
    contact = add(tenant, name="Ada", email="ada@example.com", company="Engines", tags=["vip"])

    patched = agent_api.patch(detail(contact), {"company": "Analytical"}, format="json").json()
    put = agent_api.put(detail(contact), {"phone": "+14155550123"}, format="json").json()

    assert (patched["name"], patched["company"], patched["tags"]) == ("Ada", "Analytical", ["vip"])
    assert (put["name"], put["email"], put["phone"], put["tags"]) == ("", "", "+14155550123", [])


def test_delete_answers_204(agent_api, tenant):
    contact = add(tenant, email="ada@example.com")

    response = agent_api.delete(detail(contact))

    assert response.status_code == 204
    assert not Contact.objects.exists()


def test_another_tenants_contact_is_404_for_every_method(agent_api, other_tenant):
    theirs = add(other_tenant, email="ada@example.com")

    answers = [
        agent_api.get(detail(theirs)).status_code,
        agent_api.patch(detail(theirs), {"name": "x"}, format="json").status_code,
        agent_api.put(detail(theirs), {"email": "b@example.com"}, format="json").status_code,
        agent_api.delete(detail(theirs)).status_code,
    ]

    assert answers == [404, 404, 404, 404]
    assert Contact.objects.get().name == ""


def test_viewers_read_and_agents_write(tenant, viewer):
    contact = add(tenant, email="ada@example.com")
    api = client_as(viewer, tenant)

    assert api.get(LIST).status_code == 200
    assert api.get(detail(contact)).status_code == 200
    assert api.post(LIST, {"email": "b@example.com"}, format="json").status_code == 403
    assert api.patch(detail(contact), {"name": "x"}, format="json").status_code == 403
    assert api.delete(detail(contact)).status_code == 403


# --- API: list, search, filters, ordering -------------------------------------------------------


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["name"] for row in response.json()["results"]]


@pytest.fixture
def people(tenant: Tenant, other_tenant: Tenant) -> None:
    add(tenant, name="Ada Lovelace", email="ada@engines.io", company="Engines", tags=["vip", "uk"])
    add(tenant, name="Grace Hopper", phone="+14155550123", company="Navy", tags=["vip"])
    add(tenant, name="Alan Turing", email="alan@bletchley.uk", opted_out=True, tags=["uk"])
    add(other_tenant, name="Ada Other", email="ada@engines.io", tags=["vip"])


@pytest.mark.usefixtures("people")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["Alan Turing", "Grace Hopper", "Ada Lovelace"]),
        ("?search=ada", ["Ada Lovelace"]),
        ("?search=NAVY", ["Grace Hopper"]),
        ("?search=bletchley", ["Alan Turing"]),
        ("?search=(415) 555", ["Grace Hopper"]),
        ("?tag=vip", ["Grace Hopper", "Ada Lovelace"]),
        ("?tag=vip&tag=uk", ["Ada Lovelace"]),
        ("?opted_out=true", ["Alan Turing"]),
        ("?opted_out=false&ordering=name", ["Ada Lovelace", "Grace Hopper"]),
        ("?source=import", []),
        ("?ordering=-name", ["Grace Hopper", "Alan Turing", "Ada Lovelace"]),
    ],
)
def test_the_list_searches_filters_and_orders_within_the_tenant(agent_api, query, expected):
    assert names(agent_api.get(LIST + query)) == expected


def test_the_list_filters_by_creation_time(agent_api, tenant):
    old = add(tenant, name="Old", email="old@example.com")
    Contact.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    add(tenant, name="New", email="new@example.com")
    since = (timezone.now() - timedelta(days=1)).isoformat()

    after = names(agent_api.get(LIST, {"created_after": since}))
    before = names(agent_api.get(LIST, {"created_before": since}))

    assert (after, before) == (["New"], ["Old"])


def test_an_unknown_ordering_is_a_400(agent_api):
    response = agent_api.get(LIST + "?ordering=tenant")

    assert response.status_code == 400
    assert "ordering" in response.json()


def test_the_list_costs_the_same_few_queries_for_many_contacts(agent_api, tenant, agent):
    for n in range(30):
        add(tenant, email=f"c{n}@example.com", by=agent)

    with CaptureQueriesContext(connection) as queries:
        response = agent_api.get(LIST)

    assert response.json()["count"] == 30
    assert len(queries) <= 4  # tenant, role, count, page (with created_by)


def test_a_member_of_both_tenants_sees_each_tenants_contacts_by_header(tenant, other_tenant):
    user = make_member(tenant, Role.AGENT)
    MembershipFactory.create(user=user, tenant=other_tenant, role=Role.VIEWER)
    add(tenant, name="Ours", email="a@example.com")
    add(other_tenant, name="Theirs", email="a@example.com")

    ours = names(client_as(user, tenant).get(LIST))
    theirs = names(client_as(user, other_tenant).get(LIST))

    assert (ours, theirs) == (["Ours"], ["Theirs"])


# --- Webhook events -----------------------------------------------------------------------------


def test_contact_writes_publish_contact_events_to_subscribed_endpoints(
    tenant, django_capture_on_commit_callbacks
):
    WebhookEndpoint.objects.create(
        tenant=tenant, url="https://hooks.example.com/in", secret="s", event_types=["*"]
    )

    with django_capture_on_commit_callbacks(execute=True):
        contact = add(tenant, name="Ada", email="ada@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        update_contact(contact, name="Ada Lovelace", email="ada@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        update_contact(contact, name="Ada Lovelace")  # no change: no event
    with django_capture_on_commit_callbacks(execute=True):
        delete_contact(contact)

    events = [d.payload for d in WebhookDelivery.objects.order_by("created_at", "id")]
    assert [event["type"] for event in events] == [
        "contact.created",
        "contact.updated",
        "contact.deleted",
    ]
    assert events[0]["data"]["contact"]["email"] == "ada@example.com"
    assert events[1]["data"]["changed_fields"] == ["name"]
    assert events[2]["data"]["contact"]["name"] == "Ada Lovelace"


def test_a_duplicate_that_slips_past_the_check_is_caught_by_the_unique_index(tenant):
    add(tenant, email="ada@example.com")
    racing = Contact(tenant=tenant, email="ada@example.com")  # as if checked before the first

    with pytest.raises(ValidationError) as error:
        contact_services._save(racing)

    assert error.value.message_dict == {
        "email": ["Another contact of this tenant already has this email address."]
    }
    assert Contact.objects.count() == 1
