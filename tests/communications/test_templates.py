"""Message templates: the sandbox, missing variables, built-ins and tenants' versions of them."""

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from communications.models import Channel, MessageTemplate
from communications.selectors.templates import BUILTINS, builtin_templates, resolve_template
from communications.services.contacts import create_contact
from communications.services.templates import (
    MissingVariable,
    RenderedMessage,
    TemplateRenderError,
    UnknownTemplate,
    create_template,
    delete_template,
    preview_template,
    render_template,
    update_template,
)
from communications.template_engine import html_to_text
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def render_text(tenant: Tenant, body: str, **context: Any) -> str:
    template = MessageTemplate(tenant=tenant, name="probe", channel=Channel.SMS, body=body)
    return render_template(template, tenant=tenant, channel=Channel.SMS, context=context).text


def email_template(tenant: Tenant, **fields: Any) -> MessageTemplate:
    defaults = {
        "name": "order-shipped",
        "channel": Channel.EMAIL,
        "subject": "Order {{ order.id }} is on its way",
        "html_body": "<p>Hi {{ contact.first_name }}, order {{ order.id }} has shipped.</p>",
        "sample_variables": {"order": {"id": 42}},
    }
    return create_template(tenant=tenant, **{**defaults, **fields})


# --- The sandbox --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ settings.SECRET_KEY }}", "'settings.SECRET_KEY' is not defined"),
        ("{{ contact.__class__ }}", "may not begin with underscores"),
        ("{{ contact._meta }}", "may not begin with underscores"),
        ("{{ tenant.memberships }}", "'tenant.memberships' is not defined"),
        ("{{ tenant.pk }}", "'tenant.pk' is not defined"),
        ("{% load static %}", "{% load %} is not available"),
        ("{% load i18n %}{% trans 'x' %}", "{% load %} is not available"),
        ('{% include "admin/base.html" %}', "{% include %} is not available"),
        ('{% extends "admin/base.html" %}', "{% extends %} is not available"),
        ("{% debug %}", "{% debug %} is not available"),
        ("{% url 'admin:index' %}", "{% url %} is not available"),
        ("{% csrf_token %}", "{% csrf_token %} is not available"),
        ("{{ contact.name|safe }}", "|safe is not available"),
        ("{% autoescape off %}{{ contact.name }}{% endautoescape %}", "{% autoescape %}"),
    ],
)
def test_a_template_cannot_reach_settings_objects_files_or_private_attributes(
    tenant, source, problem
):
    contact = create_contact(tenant=tenant, name="Ada Lovelace", email="ada@example.com")

    with pytest.raises(TemplateRenderError) as error:
        render_text(tenant, source, contact=contact)

    assert problem in error.value.reason


def test_filters_cannot_be_made_to_produce_huge_output(tenant):
    assert render_text(tenant, '{{ "ab"|center:"6" }}|') == "ab  |"

    with pytest.raises(TemplateRenderError) as error:
        render_text(tenant, '{{ "x"|ljust:"999999999" }}')

    assert error.value.reason == (
        "It could not be rendered: |ljust takes widths and precisions up to 1000."
    )


def test_a_model_passed_in_the_context_becomes_plain_data(tenant):
    contact = create_contact(
        tenant=tenant, name="Ada Lovelace", email="ADA@example.com", custom_fields={"plan": "pro"}
    )

    text = render_text(
        tenant,
        "{{ contact.first_name }} {{ contact.email }} {{ contact.custom_fields.plan }} "
        "{{ tenant.name }} {{ contact.keys }}",
        contact=contact,
    )

    assert text.startswith("Ada ada@example.com pro Acme ")
    assert "tenant" not in text.split("Acme")[1]  # keys() lists fields, not the model's insides
    with pytest.raises(MissingVariable):
        render_text(tenant, "{{ contact.tenant }}", contact=contact)


def test_templates_cannot_change_the_data_they_are_given(tenant):
    variables = {"items": ["a", "b"], "order": {"id": 1}}

    text = render_text(tenant, "{% firstof items.pop items.clear order.clear 'x' %}", **variables)

    assert text == "x"
    with pytest.raises(MissingVariable):
        render_text(tenant, "{{ items.pop }}", **variables)
    assert variables == {"items": ["a", "b"], "order": {"id": 1}}


def test_a_missing_variable_fails_the_render_naming_it(tenant):
    with pytest.raises(MissingVariable) as error:
        render_text(tenant, "Hello {{ contact.nickname }}!", contact={"name": "Ada"})

    assert error.value.variable == "contact.nickname"
    assert str(error.value) == "body: The variable 'contact.nickname' is not defined."


def test_optional_variables_are_written_with_if_and_firstof(tenant):
    source = "{% if coupon %}Code {{ coupon }}. {% endif %}Hi {% firstof contact.nick 'there' %}."

    assert render_text(tenant, source, contact={}) == "Hi there."
    assert render_text(tenant, source, coupon="X1") == "Code X1. Hi there."


def test_html_is_escaped_and_subject_and_text_are_not(tenant):
    template = email_template(
        tenant,
        subject="For {{ contact.name }}",
        html_body="<p>{{ contact.name }}</p>",
        text_body="{{ contact.name }}",
    )

    rendered = render_template(
        template, tenant=tenant, channel=Channel.EMAIL, context={"contact": {"name": "A & <B>"}}
    )

    assert rendered == RenderedMessage(
        subject="For A & <B>", html="<p>A &amp; &lt;B&gt;</p>", text="A & <B>"
    )


def test_without_a_text_body_the_text_alternative_is_made_from_the_html(tenant):
    html = (
        "<h1>Hello Ada</h1><p>Your order <b>42</b> shipped.</p>"
        '<p><a href="https://example.com/t/42">Track it</a></p><ul><li>One</li><li>Two</li></ul>'
    )

    assert html_to_text(html) == (
        "Hello Ada\n\nYour order 42 shipped.\n\nTrack it (https://example.com/t/42)\n\n- One\n- Two"
    )


def test_a_subject_is_one_line_whatever_the_template_says(tenant):
    template = email_template(tenant, subject="Order\n{{ order.id }}\r\n shipped")

    rendered = render_template(
        template,
        tenant=tenant,
        channel=Channel.EMAIL,
        context={"order": {"id": 7}, "contact": {"first_name": "Ada"}},
    )

    assert rendered.subject == "Order 7 shipped"


# --- Built-ins and tenants' versions -------------------------------------------------------------


def test_every_builtin_renders_with_its_sample_as_html_with_a_text_alternative(tenant):
    emails = [t for t in builtin_templates() if t.channel == Channel.EMAIL]

    rendered = {t.name: preview_template(t, tenant=tenant) for t in emails}

    assert sorted(rendered) == sorted(BUILTINS)
    for name, message in rendered.items():
        assert message.subject, name
        assert "\n" not in message.subject, name
        assert message.html.startswith("<!DOCTYPE html>"), name
        assert "Acme" in message.html, name
        assert message.text, name
        assert "<" not in message.text, name
        assert "{" not in message.text, name


def test_builtins_render_from_a_notification_alone(tenant):
    context = {
        "user": {"first_name": "Grace"},
        "notification": {"title": "t", "body": "", "link": ""},
    }

    for name in ("contact-created", "export-ready", "import-completed", "report-ready"):
        rendered = render_template(name, tenant=tenant, channel=Channel.EMAIL, context=context)
        assert rendered.text.startswith("Hi Grace,"), name


def test_a_name_means_the_tenants_own_template_else_the_builtin(tenant, other_tenant):
    create_template(
        tenant=tenant, name="welcome", channel=Channel.SMS, body="Hey {{ tenant.name }}"
    )

    ours = render_template("welcome", tenant=tenant, channel=Channel.SMS, context={})
    theirs = render_template("welcome", tenant=other_tenant, channel=Channel.SMS, context={})

    assert ours.text == "Hey Acme"
    assert theirs.text.startswith("Hi there, welcome to Globex!")


def test_deleting_a_tenants_version_brings_the_builtin_back(tenant):
    own = create_template(tenant=tenant, name="welcome", channel=Channel.SMS, body="Hey")

    delete_template(own)

    assert resolve_template("welcome", tenant=tenant, channel=Channel.SMS).body.startswith("Hi ")


def test_an_unknown_name_is_a_clear_error(tenant):
    with pytest.raises(UnknownTemplate) as error:
        render_template("nope", tenant=tenant, channel=Channel.EMAIL, context={})

    assert error.value.message_dict == {"template": ["There is no email template named 'nope'."]}


# --- Saving -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"html_body": "{% if x %}never closed"},
            {"html_body": ["Unclosed tag on line 1: 'if'. Looking for one of: elif, else, endif."]},
        ),
        ({"subject": ""}, {"subject": ["An email template needs a subject."]}),
        (
            {"html_body": "", "text_body": ""},
            {"html_body": ["Give an HTML body, a text body or both."]},
        ),
        (
            {"name": "Not a slug!"},
            {
                "name": [
                    "Enter a valid “slug” consisting of letters, numbers, underscores or hyphens."
                ]
            },
        ),
    ],
)
def test_saving_refuses_a_broken_template_at_its_field(tenant, fields, errors):
    with pytest.raises(ValidationError) as error:
        email_template(tenant, **fields)

    assert error.value.message_dict == errors
    assert not MessageTemplate.objects.exists()


def test_saving_refuses_a_variable_without_a_sample_value(tenant):
    with pytest.raises(ValidationError) as error:
        email_template(tenant, html_body="<p>{{ contcat.name }}</p>")

    assert error.value.message_dict["html_body"][0].startswith(
        "The variable 'contcat.name' is not defined. Give it an example value in sample_variables"
    )


def test_a_tenants_version_of_a_builtin_may_use_the_builtins_variables(tenant):
    template = create_template(
        tenant=tenant, name="password-reset", channel=Channel.SMS, body="Reset: {{ reset_url }}"
    )

    assert template.pk is not None


def test_an_sms_template_has_a_body_and_no_email_parts(tenant):
    with pytest.raises(ValidationError) as error:
        create_template(tenant=tenant, name="x", channel=Channel.SMS, subject="Hi", body="")

    assert error.value.message_dict == {
        "body": ["A sms template needs a body."],
        "subject": ["Only email templates have this part."],
    }


def test_one_name_per_channel_per_tenant(tenant, other_tenant):
    email_template(tenant)
    email_template(other_tenant)
    create_template(tenant=tenant, name="order-shipped", channel=Channel.SMS, body="Shipped")

    with pytest.raises(ValidationError) as error:
        email_template(tenant)

    assert error.value.message_dict == {
        "name": ["There is already a email template named 'order-shipped'."]
    }


def test_an_update_is_checked_like_a_creation(tenant):
    template = email_template(tenant)

    with pytest.raises(ValidationError):
        update_template(template, html_body="{% for %}")
    update_template(template, subject="Shipped: {{ order.id }}")

    template.refresh_from_db()
    assert template.subject == "Shipped: {{ order.id }}"


def test_a_preview_uses_a_real_contact_and_variables_over_the_sample(tenant):
    template = email_template(tenant)
    contact = create_contact(tenant=tenant, name="Grace Hopper", phone="+14155550100")

    rendered = preview_template(
        template, tenant=tenant, contact=contact, variables={"order": {"id": 7}}
    )

    assert rendered.subject == "Order 7 is on its way"
    assert rendered.text == "Hi Grace, order 7 has shipped."
