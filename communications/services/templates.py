"""Message templates: render one for a recipient; create, check, change and delete tenants' own.

Rendering happens in the sandbox of communications.template_engine. A name finds the tenant's
own template for the channel, else the built-in default (communications.selectors.templates).
"""

import copy
import logging
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from communications.models import Channel, Contact, MessageTemplate
from communications.selectors.templates import (
    BuiltinTemplate,
    UnknownTemplate,
    base_sample,
    get_builtin,
    resolve_template,
)
from communications.template_engine import (
    MissingVariable,
    RenderedMessage,
    TemplateRenderError,
    TemplateSource,
    build_context,
    contact_variables,
    render_part,
    render_source,
)
from tenants.models import Tenant
from tenants.users import Actor, acting_user

logger = logging.getLogger(__name__)

__all__ = [
    "MissingVariable",
    "RenderedMessage",
    "TemplateRenderError",
    "UnknownTemplate",
    "check_template",
    "create_template",
    "delete_template",
    "preview_template",
    "render_template",
    "update_template",
]


def render_template(
    template: MessageTemplate | BuiltinTemplate | str,
    *,
    tenant: Tenant,
    channel: str,
    context: Mapping[str, Any] | None,
) -> RenderedMessage:
    """Render a template for one recipient; a name finds the tenant's own, else the built-in.

    Raises UnknownTemplate for a name neither has, TemplateRenderError (MissingVariable for an
    undefined variable) when it cannot be rendered; both are ValidationErrors (400 in the API).
    """
    if isinstance(template, str):
        template = resolve_template(template, tenant=tenant, channel=channel)
    elif template.channel != channel:
        raise TemplateRenderError(
            "channel", f"{template.name!r} is a {template.channel} template, not {channel}."
        )
    return render_source(template, context=build_context(tenant=tenant, variables=context))


# --- Tenants' templates ------------------------------------------------------------------------

EDITABLE = (
    "name",
    "channel",
    "description",
    "subject",
    "html_body",
    "text_body",
    "body",
    "sample_variables",
)
EMAIL_PARTS = (("subject", False), ("html_body", True), ("text_body", False))


@transaction.atomic
def create_template(*, tenant: Tenant, by: Actor = None, **fields: Any) -> MessageTemplate:
    """Save a tenant's template once it compiles and renders with its sample variables."""
    author = acting_user(by)
    template = MessageTemplate(tenant=tenant, created_by=author, **fields)
    check_template(template)
    return _save(template)


@transaction.atomic
def update_template(template: MessageTemplate, **fields: Any) -> MessageTemplate:
    """Change a template; the result must compile and render with its sample variables.

    A refused change leaves `template` as it was.
    """
    candidate = copy.copy(template)
    for name, value in fields.items():
        setattr(candidate, name, value)
    check_template(candidate)
    for name, value in fields.items():
        setattr(template, name, value)
    return _save(template, update_fields=[*fields, "updated_at"])


def delete_template(template: MessageTemplate) -> None:
    """Delete a tenant's template; a built-in of the same name is used again."""
    template.delete()


def check_template(template: MessageTemplate) -> None:
    """Raise ValidationError with messages per field: fields, name, syntax, a trial render."""
    errors = _field_errors(template)
    if not errors:
        errors = _render_errors(template, context=sample_context(template))
    if errors:
        raise ValidationError(errors)
    taken = MessageTemplate.objects.for_tenant(template.tenant).filter(
        name=template.name, channel=template.channel
    )
    if taken.exclude(pk=template.pk).exists():
        raise _name_taken(template)


def preview_template(
    template: MessageTemplate | BuiltinTemplate,
    *,
    tenant: Tenant,
    contact: Contact | None = None,
    variables: Mapping[str, Any] | None = None,
) -> RenderedMessage:
    """Render with the sample data, a real contact if given, and `variables` over both."""
    context = sample_context(template, contact=contact, variables=variables)
    return render_source(template, context=build_context(tenant=tenant, variables=context))


def sample_context(
    template: TemplateSource,
    *,
    contact: Contact | None = None,
    variables: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The sample contact, user and notification, the built-in's and the template's samples."""
    sample = base_sample()
    builtin = get_builtin(template.name, channel=template.channel)
    if builtin is not None:  # a tenant's version of a built-in gets the variables it gets
        sample = deep_merge(sample, builtin.sample_variables)
    if isinstance(template.sample_variables, Mapping):
        sample = deep_merge(sample, template.sample_variables)
    if contact is not None:
        sample["contact"] = contact_variables(contact)
    return deep_merge(sample, variables or {})


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `extra` on top; nested objects are merged key by key."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _field_errors(template: MessageTemplate) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    try:
        template.full_clean(
            exclude=["tenant", "created_by"], validate_unique=False, validate_constraints=False
        )
    except ValidationError as error:
        errors.update(error.message_dict)
    if not isinstance(template.sample_variables, dict):
        errors["sample_variables"] = ['An object of example values, e.g. {"order": {"id": 42}}.']
    if template.channel == Channel.EMAIL:
        if not template.subject.strip():
            errors.setdefault("subject", []).append("An email template needs a subject.")
        if not (template.html_body.strip() or template.text_body.strip()):
            errors.setdefault("html_body", []).append("Give an HTML body, a text body or both.")
        if template.body:
            errors.setdefault("body", []).append(
                "Email templates use html_body and text_body; body is for SMS and WhatsApp."
            )
    elif template.channel in Channel.values:
        if not template.body.strip():
            errors.setdefault("body", []).append(f"A {template.channel} template needs a body.")
        for name, _ in EMAIL_PARTS:
            if getattr(template, name):
                errors.setdefault(name, []).append("Only email templates have this part.")
    return errors


def _render_errors(template: MessageTemplate, *, context: dict[str, Any]) -> dict[str, list[str]]:
    """Each part rendered with the sample: its syntax error or missing variable, by field."""
    parts = EMAIL_PARTS if template.channel == Channel.EMAIL else (("body", False),)
    data = build_context(tenant=template.tenant, variables=context)
    errors: dict[str, list[str]] = {}
    for field, html in parts:
        try:
            render_part(getattr(template, field), field=field, html=html, context=data)
        except MissingVariable as error:
            root = error.variable.split(".")[0]
            errors[field] = [
                f"{error.reason} Give it an example value in sample_variables, or write "
                f"{{% if {root} %}}…{{% endif %}} around it if it is optional."
            ]
        except TemplateRenderError as error:
            errors[field] = [error.reason]
    return errors


def _save(template: MessageTemplate, *, update_fields: list[str] | None = None) -> MessageTemplate:
    """Save; a name a concurrent request took meanwhile is refused like one taken before."""
    try:
        with transaction.atomic():
            template.save(update_fields=update_fields)
    except IntegrityError as error:
        if "message_template_unique_name" in str(error):
            raise _name_taken(template) from None
        raise
    logger.info(
        "Saved %s template %s of tenant %s", template.channel, template.name, template.tenant_id
    )
    return template


def _name_taken(template: MessageTemplate) -> ValidationError:
    return ValidationError(
        {"name": [f"There is already a {template.channel} template named {template.name!r}."]}
    )
