"""The message templates admin: pages, form errors from the sandbox, preview, built-ins."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from communications.models import Channel, MessageTemplate
from communications.services.templates import create_template
from tenants.models import Role, Tenant
from tests.factories import make_member

pytestmark = pytest.mark.django_db


def url(view: str, *args: object) -> str:
    return reverse(f"admin:communications_messagetemplate_{view}", args=args)


def form_data(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    data = {
        "tenant": tenant.pk,
        "name": "order-shipped",
        "channel": "email",
        "description": "",
        "subject": "Order {{ order.id }} shipped",
        "html_body": "<p>Hi {{ contact.first_name }} — order {{ order.id }} is on its way.</p>",
        "text_body": "",
        "body": "",
        "sample_variables": '{"order": {"id": 42}}',
    }
    return {**data, **fields}


def make(tenant: Tenant) -> MessageTemplate:
    data = form_data(tenant)
    del data["tenant"]
    data["sample_variables"] = {"order": {"id": 42}}
    return create_template(tenant=tenant, **data)


def test_the_template_pages_open(admin_client, tenant):
    template = make(tenant)

    pages = [
        url("changelist"),
        url("add"),
        url("change", template.pk),
        url("delete", template.pk),
        url("preview", template.pk),
        url("builtins"),
        url("builtin_preview", "welcome", "email"),
        url("builtin_preview", "welcome", "whatsapp"),
    ]

    assert [admin_client.get(page).status_code for page in pages] == [200] * len(pages)


def test_adding_a_template_goes_through_the_service(admin_client, tenant, admin_user):
    response = admin_client.post(url("add"), form_data(tenant))

    template = MessageTemplate.objects.get()
    assert response.status_code == 302
    assert (template.name, template.created_by) == ("order-shipped", admin_user)


def test_sample_variables_may_be_left_empty(admin_client, tenant):
    data = form_data(tenant, subject="Hello", sample_variables="")
    data["html_body"] = "<p>Hi {{ contact.first_name }}</p>"

    response = admin_client.post(url("add"), data)

    assert response.status_code == 302
    assert MessageTemplate.objects.get().sample_variables == {}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"html_body": "{% include 'admin/base.html' %}"}, "html_body", "{% include %} is not"),
        ({"subject": "{{ order.total }}"}, "subject", "'order.total' is not defined"),
        ({"body": "Hi"}, "body", "body is for SMS and WhatsApp"),
    ],
)
def test_a_template_that_cannot_render_is_a_form_error(
    admin_client, tenant, change, field, message
):
    response = admin_client.post(url("add"), form_data(tenant, **change))

    errors = response.context["adminform"].form.errors
    assert response.status_code == 200
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert not MessageTemplate.objects.exists()


def test_the_preview_shows_subject_html_in_a_sandboxed_frame_and_text(admin_client, tenant):
    template = make(tenant)

    page = admin_client.get(url("preview", template.pk)).content.decode()

    assert '<dd id="preview-subject">Order 42 shipped</dd>' in page
    assert 'sandbox=""' in page
    assert 'srcdoc="&lt;p&gt;Hi Ada — order 42 is on its way.&lt;/p&gt;"' in page
    assert "Hi Ada — order 42 is on its way.</pre>" in page


def test_customising_a_builtin_starts_from_its_source(admin_client):
    response = admin_client.get(url("add"), {"builtin": "report-ready", "channel": "email"})

    initial = response.context["adminform"].form.initial
    assert initial["name"] == "report-ready"
    assert initial["subject"].startswith("Your report is ready")


def test_members_see_their_tenants_templates_and_only_admins_edit(tenant, other_tenant):
    ours = make(tenant)
    theirs = make(other_tenant)
    agent = Client()
    agent.force_login(make_member(tenant, Role.AGENT, is_staff=True))

    assert agent.get(url("preview", ours.pk)).status_code == 200
    assert agent.get(url("preview", theirs.pk)).status_code == 404
    assert agent.post(url("change", ours.pk), {"name": "x"}).status_code == 403
    assert agent.get(url("add")).status_code == 403
    assert MessageTemplate.objects.filter(channel=Channel.EMAIL).count() == 2


def test_changing_a_template_goes_through_the_service(admin_client, tenant):
    template = make(tenant)
    data = form_data(tenant, subject="Shipped: {{ order.id }}")
    del data["tenant"]

    response = admin_client.post(url("change", template.pk), data)
    refused = admin_client.post(url("change", template.pk), {**data, "subject": "{% if %}"})

    template.refresh_from_db()
    assert response.status_code == 302
    assert refused.status_code == 200
    assert template.subject == "Shipped: {{ order.id }}"
