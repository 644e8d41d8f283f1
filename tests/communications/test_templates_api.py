"""The templates API: CRUD, validation as 400s, previews, built-ins, roles and other tenants."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from communications.models import Channel, MessageTemplate
from communications.selectors.templates import BUILTINS
from communications.services.contacts import create_contact
from communications.services.templates import create_template
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

LIST = "/api/v1/templates/"
SHIPPED = {
    "name": "order-shipped",
    "channel": "email",
    "subject": "Order {{ order.id }} shipped",
    "html_body": "<p>Hi {{ contact.first_name }}, order {{ order.id }} is on its way.</p>",
    "sample_variables": {"order": {"id": 42}},
}


def client_as(user: Any, tenant: Tenant) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    client.credentials(HTTP_X_TENANT=tenant.slug)
    return client


@pytest.fixture
def admin_api(tenant: Tenant, tenant_admin: Any) -> APIClient:
    return client_as(tenant_admin, tenant)


def make(tenant: Tenant, **fields: Any) -> MessageTemplate:
    return create_template(tenant=tenant, **{**SHIPPED, **fields})


def test_an_admin_creates_a_template_and_reads_it_back(admin_api):
    response = admin_api.post(LIST, SHIPPED, format="json")

    body = response.json()
    assert response.status_code == 201
    assert body["id"] == MessageTemplate.objects.get().pk
    assert {key: body[key] for key in SHIPPED} == SHIPPED
    assert admin_api.get(f"{LIST}{body['id']}/").json() == body


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            {"html_body": "{% load static %}"},
            "html_body",
            "Line 1: The tag {% load %} is not available in message templates.",
        ),
        (
            {"subject": "{{ settings.SECRET_KEY }}"},
            "subject",
            "The variable 'settings.SECRET_KEY' is not defined.",
        ),
        ({"html_body": "{{ contact.__class__ }}"}, "html_body", "underscores"),
        ({"name": "bad name"}, "name", "slug"),
    ],
)
def test_a_template_that_cannot_render_is_a_400_at_its_field(admin_api, change, field, message):
    response = admin_api.post(LIST, {**SHIPPED, **change}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert message in response.json()[field][0]


def test_a_second_template_of_the_same_name_and_channel_is_a_400(admin_api, tenant):
    make(tenant)

    response = admin_api.post(LIST, SHIPPED, format="json")

    assert response.status_code == 400
    assert response.json() == {"name": ["There is already a email template named 'order-shipped'."]}


def test_patch_put_and_delete(admin_api, tenant):
    template = make(tenant)
    url = f"{LIST}{template.pk}/"

    patched = admin_api.patch(url, {"description": "Sent on dispatch"}, format="json")
    refused = admin_api.patch(url, {"html_body": "{% if %}"}, format="json")
    put = admin_api.put(
        url, {"name": "shipped", "channel": "sms", "body": "Shipped!"}, format="json"
    )
    deleted = admin_api.delete(url)

    assert (patched.status_code, patched.json()["description"]) == (200, "Sent on dispatch")
    assert refused.status_code == 400
    assert (put.json()["channel"], put.json()["subject"], put.json()["body"]) == (
        "sms",
        "",
        "Shipped!",
    )
    assert deleted.status_code == 204
    assert not MessageTemplate.objects.exists()


def test_the_list_shows_the_tenants_own_templates_by_channel(admin_api, tenant, other_tenant):
    make(tenant)
    make(tenant, name="shipped", channel="sms", subject="", html_body="", body="Shipped")
    make(other_tenant, name="theirs")

    every = admin_api.get(LIST).json()["results"]
    sms = admin_api.get(LIST, {"channel": "sms"}).json()["results"]

    assert [row["name"] for row in every] == ["order-shipped", "shipped"]
    assert [row["name"] for row in sms] == ["shipped"]


def test_preview_renders_with_a_contact_and_variables(admin_api, tenant):
    template = make(tenant)
    contact = create_contact(tenant=tenant, name="Grace Hopper", email="grace@example.com")

    response = admin_api.post(
        f"{LIST}{template.pk}/preview/",
        {"contact_id": contact.pk, "variables": {"order": {"id": 7}}},
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == {
        "subject": "Order 7 shipped",
        "html": "<p>Hi Grace, order 7 is on its way.</p>",
        "text": "Hi Grace, order 7 is on its way.",
    }


def test_preview_with_another_tenants_contact_is_a_400(admin_api, tenant, other_tenant):
    template = make(tenant)
    theirs = create_contact(tenant=other_tenant, email="ada@example.com")

    response = admin_api.post(
        f"{LIST}{template.pk}/preview/", {"contact_id": theirs.pk}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"contact_id": ["There is no such contact in this tenant."]}


def test_preview_by_name_shows_the_builtin_until_the_tenant_has_its_own(admin_api, tenant):
    by_name = {"name": "welcome", "channel": "sms", "variables": {"contact": {"first_name": "Al"}}}

    builtin = admin_api.post(f"{LIST}preview/", by_name, format="json").json()
    make(
        tenant,
        name="welcome",
        channel="sms",
        subject="",
        html_body="",
        body="Yo {{ contact.first_name }}",
    )
    own = admin_api.post(f"{LIST}preview/", by_name, format="json").json()

    assert builtin["text"].startswith("Hi Al, welcome to Acme!")
    assert own == {"subject": "", "html": "", "text": "Yo Al"}


def test_the_builtins_are_listed_with_their_sources_and_whether_overridden(admin_api, tenant):
    make(tenant, name="welcome")

    rows = admin_api.get(f"{LIST}builtins/").json()

    emails = {row["name"]: row for row in rows if row["channel"] == "email"}
    assert sorted(emails) == sorted(BUILTINS)
    assert emails["welcome"]["overridden"] is True
    assert emails["report-ready"]["overridden"] is False
    assert "{{ tenant.name }}" in emails["report-ready"]["html_body"]
    assert {row["channel"] for row in rows} == set(Channel.values)


def test_viewers_read_and_preview_but_only_admins_write(tenant, viewer, agent):
    template = make(tenant)
    viewer_api, agent_api = client_as(viewer, tenant), client_as(agent, tenant)

    assert viewer_api.get(LIST).status_code == 200
    assert viewer_api.post(f"{LIST}{template.pk}/preview/", {}, format="json").status_code == 200
    assert viewer_api.post(LIST, {**SHIPPED, "name": "x"}, format="json").status_code == 403
    assert (
        agent_api.patch(f"{LIST}{template.pk}/", {"description": "x"}, format="json").status_code
        == 403
    )
    assert agent_api.delete(f"{LIST}{template.pk}/").status_code == 403


def test_another_tenants_template_is_404(admin_api, other_tenant):
    theirs = make(other_tenant)
    url = f"{LIST}{theirs.pk}/"

    answers = [
        admin_api.get(url).status_code,
        admin_api.patch(url, {"description": "x"}, format="json").status_code,
        admin_api.delete(url).status_code,
        admin_api.post(f"{url}preview/", {}, format="json").status_code,
    ]

    assert answers == [404, 404, 404, 404]


def test_preview_by_an_unknown_name_is_a_400(admin_api):
    response = admin_api.post(f"{LIST}preview/", {"name": "nope"}, format="json")

    assert response.status_code == 400
    assert response.json() == {"template": ["There is no email template named 'nope'."]}


def test_the_list_costs_a_fixed_number_of_queries(admin_api, tenant, django_assert_max_num_queries):
    for n in range(20):
        make(tenant, name=f"t{n}")

    with django_assert_max_num_queries(4):  # tenant, role, count, page
        response = admin_api.get(LIST)

    assert response.json()["count"] == 20
