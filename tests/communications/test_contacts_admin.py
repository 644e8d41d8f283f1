"""The contacts admin: pages, the form's validation through the services, filters, scoping."""

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from communications.models import Contact
from communications.services.contacts import create_contact
from tenants.models import Role, Tenant
from tests.factories import make_member

pytestmark = pytest.mark.django_db


def url(view: str, *args: object) -> str:
    return reverse(f"admin:communications_contact_{view}", args=args)


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form_data(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    data = {
        "tenant": tenant.pk,
        "name": "Ada Lovelace",
        "email": "Ada@Example.com",
        "phone": "",
        "company": "",
        "tags": "vip,uk",
        "custom_fields": "{}",
    }
    return {**data, **fields}


def test_the_contact_pages_open(admin_client, tenant):
    contact = create_contact(tenant=tenant, name="Ada", email="ada@example.com", tags=["vip"])

    pages = [url("changelist"), url("add"), url("change", contact.pk), url("delete", contact.pk)]

    assert [admin_client.get(page).status_code for page in pages] == [200, 200, 200, 200]


def test_adding_through_the_admin_normalises_and_records_the_source(admin_client, tenant):
    response = admin_client.post(url("add"), form_data(tenant, phone="415 555 0123"))

    contact = Contact.objects.get()
    assert response.status_code == 302
    assert (contact.email, contact.phone, contact.tags, contact.source) == (
        "ada@example.com",
        "+14155550123",
        ["vip", "uk"],
        "admin",
    )


def test_a_duplicate_is_a_form_error_at_its_field(admin_client, tenant):
    create_contact(tenant=tenant, email="ada@example.com")

    response = admin_client.post(url("add"), form_data(tenant))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "email": ["Another contact of this tenant already has this email address."]
    }


def test_a_bad_phone_is_a_form_error(admin_client, tenant):
    response = admin_client.post(url("add"), form_data(tenant, phone="nope"))

    assert response.context["adminform"].form.errors == {"phone": ["'nope' is not a phone number."]}


def test_changing_a_contact_goes_through_the_service(admin_client, tenant):
    contact = create_contact(tenant=tenant, name="Ada", email="ada@example.com")
    data = form_data(tenant, name="Ada Lovelace", email="ADA@example.com", company="Engines")
    del data["tenant"]

    response = admin_client.post(url("change", contact.pk), data)

    contact.refresh_from_db()
    assert response.status_code == 302
    assert (contact.name, contact.email, contact.company) == (
        "Ada Lovelace",
        "ada@example.com",
        "Engines",
    )


def test_the_list_filters_by_tag_and_searches(admin_client, tenant):
    create_contact(tenant=tenant, name="Ada", email="ada@example.com", tags=["vip"])
    create_contact(tenant=tenant, name="Grace", email="grace@example.com", tags=["uk"])

    by_tag = admin_client.get(url("changelist"), {"tag": "vip"})
    by_search = admin_client.get(url("changelist"), {"q": "grace"})

    assert [str(c) for c in by_tag.context["cl"].result_list] == ["Ada"]
    assert [str(c) for c in by_search.context["cl"].result_list] == ["Grace"]


def test_staff_see_only_their_tenants_and_viewers_cannot_edit(tenant, other_tenant):
    ours = create_contact(tenant=tenant, name="Ours", email="a@example.com")
    theirs = create_contact(tenant=other_tenant, name="Theirs", email="a@example.com")
    viewer = client_for(make_member(tenant, Role.VIEWER, is_staff=True))
    agent = client_for(make_member(tenant, Role.AGENT, is_staff=True))

    listed = viewer.get(url("changelist")).context["cl"].result_list

    assert [str(c) for c in listed] == ["Ours"]
    assert viewer.get(url("change", theirs.pk)).status_code == 302  # "doesn't exist" redirect
    assert viewer.post(url("change", ours.pk), {"name": "x"}).status_code == 403
    assert agent.post(url("delete", ours.pk), {"post": "yes"}).status_code == 302
    assert list(Contact.objects.values_list("name", flat=True)) == ["Theirs"]


def test_the_changelist_costs_the_same_queries_for_many_contacts(admin_client, tenant):
    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url("changelist")).status_code == 200
        return len(queries)

    create_contact(tenant=tenant, email="first@example.com", tags=["vip"])
    few = queries_for_list()
    for n in range(20):
        create_contact(tenant=tenant, email=f"c{n}@example.com", tags=["vip", f"t{n}"])

    assert queries_for_list() == few


def test_the_contacts_list_offers_import_and_export(admin_client, tenant):
    page = admin_client.get(url("changelist")).content.decode()

    assert reverse("admin:communications_contactimport_add") in page
    assert reverse("admin:communications_contactexport_add") in page


def test_opting_out_a_selection_changes_only_the_users_tenants_contacts(tenant, other_tenant):
    ours = create_contact(tenant=tenant, email="a@example.com")
    already = create_contact(tenant=tenant, email="b@example.com", opted_out=True)
    theirs = create_contact(tenant=other_tenant, email="a@example.com")
    agent = client_for(make_member(tenant, Role.AGENT, is_staff=True))

    response = agent.post(
        url("changelist"),
        {"action": "opt_out_selected", "_selected_action": [ours.pk, already.pk, theirs.pk]},
        follow=True,
    )

    opted_out = set(Contact.objects.filter(opted_out=True).values_list("pk", flat=True))
    assert opted_out == {ours.pk, already.pk}
    assert "Opted out 1 contact(s)." in response.content.decode()
