"""Writes of contacts: create, update, delete, each publishing its webhook event."""

import copy
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from communications.addresses import normalize_email, normalize_phone
from communications.models import Contact
from communications.services.events import publish_event
from communications.services.notifications import announce_contact
from tenants.models import Tenant
from tenants.users import Actor, acting_user

logger = logging.getLogger(__name__)


# --- Writes -------------------------------------------------------------------------------------

EDITABLE = ("name", "email", "phone", "company", "tags", "opted_out", "custom_fields")
MAX_TAGS = 50
MAX_CUSTOM_FIELDS = 100
UNIQUE_FIELDS = {"contact_unique_email": "email", "contact_unique_phone": "phone"}


@transaction.atomic
def create_contact(
    *, tenant: Tenant, by: Actor = None, source: str = Contact.Source.API, **fields: Any
) -> Contact:
    """Save a new contact (email lowercased, phone in E.164), publish contact.created and
    notify the members the tenant chose for new contacts."""
    author = acting_user(by)
    contact = Contact(tenant=tenant, created_by=author, source=source)
    for name, value in clean_contact_fields(tenant=tenant, **fields).items():
        setattr(contact, name, value)
    check_contact(contact)
    _save(contact)
    publish_event(tenant, "contact.created", {"contact": contact_payload(contact)})
    announce_contact(contact, by=author)
    logger.info("Created contact %s of tenant %s", contact.pk, tenant.slug)
    return contact


@transaction.atomic
def update_contact(contact: Contact, *, by: Actor = None, **fields: Any) -> Contact:
    """Change the given fields; publishes contact.updated naming the fields that changed."""
    cleaned = clean_contact_fields(tenant=contact.tenant, **fields)
    changed = [name for name, value in cleaned.items() if getattr(contact, name) != value]
    if not changed:
        return contact
    candidate = copy.copy(contact)  # a refused change leaves `contact` as it was
    for name in changed:
        setattr(candidate, name, cleaned[name])
    check_contact(candidate)
    for name in changed:
        setattr(contact, name, cleaned[name])
    _save(contact, update_fields=[*changed, "updated_at"])
    data = {"contact": contact_payload(contact), "changed_fields": changed}
    publish_event(contact.tenant, "contact.updated", data)
    logger.info("Updated contact %s of tenant %s: %s", contact.pk, contact.tenant.slug, changed)
    return contact


@transaction.atomic
def delete_contact(contact: Contact, *, by: Actor = None) -> None:
    """Delete the contact and publish contact.deleted with what it was."""
    payload = contact_payload(contact)
    contact.delete()
    publish_event(contact.tenant, "contact.deleted", {"contact": payload})
    logger.info("Deleted contact %s of tenant %s", payload["id"], contact.tenant.slug)


def clean_contact_fields(*, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    """The given fields normalised, or ValidationError with messages per field."""
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise ValueError(f"Not contact fields: {', '.join(unknown)}")
    cleaners: dict[str, Callable[[Any], Any]] = {
        "name": _clean_text,
        "company": _clean_text,
        "email": normalize_email,
        "phone": lambda value: normalize_phone(value, region=tenant.default_region),
        "tags": clean_tags,
        "opted_out": bool,
        "custom_fields": clean_custom_fields,
    }
    cleaned, errors = {}, {}
    for name, value in fields.items():
        try:
            cleaned[name] = cleaners[name](value)
        except ValidationError as error:
            errors[name] = error.messages
    if errors:
        raise ValidationError(errors)
    return cleaned


def clean_tags(value: Any) -> list[str]:
    """Tags stripped, empty ones dropped, each once, in the order given."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        raise ValidationError("Give a list of tags.")
    tags = list(dict.fromkeys(str(tag).strip() for tag in value if str(tag).strip()))
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"A contact has at most {MAX_TAGS} tags.")
    too_long = [tag for tag in tags if len(tag) > 50]
    if too_long:
        raise ValidationError(f"Keep each tag to 50 characters: {too_long[0][:60]!r} is longer.")
    return tags


def clean_custom_fields(value: Any) -> dict[str, Any]:
    """An object of names (text, at most 100 characters) to JSON values."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError('Give an object, e.g. {"plan": "pro"}.')
    if len(value) > MAX_CUSTOM_FIELDS:
        raise ValidationError(f"A contact has at most {MAX_CUSTOM_FIELDS} custom fields.")
    bad = [key for key in value if not isinstance(key, str) or not key.strip() or len(key) > 100]
    if bad:
        raise ValidationError(f"Custom field names are text of 1 to 100 characters: {bad[0]!r}.")
    return value


def contact_payload(contact: Contact) -> dict[str, Any]:
    """A contact as JSON, as webhook events carry it."""
    return {
        "id": contact.pk,
        "name": contact.name,
        "email": contact.email,
        "phone": contact.phone,
        "company": contact.company,
        "tags": list(contact.tags),
        "opted_out": contact.opted_out,
        "custom_fields": contact.custom_fields,
        "source": contact.source,
        "created_at": contact.created_at.isoformat() if contact.created_at else None,
        "updated_at": contact.updated_at.isoformat() if contact.updated_at else None,
    }


def _clean_text(value: Any) -> str:
    return " ".join(str(value or "").split())


def check_contact(contact: Contact) -> None:
    """Raise ValidationError unless it has an email or a phone, neither another contact's."""
    contact.clean_fields(exclude=["tenant", "created_by", "source"])  # lengths
    if not (contact.email or contact.phone):
        message = "Give an email address, a phone number or both."
        raise ValidationError({"email": [message], "phone": [message]})
    others = Contact.objects.for_tenant(contact.tenant).exclude(pk=contact.pk)
    errors = {}
    if contact.email and others.filter(email=contact.email).exists():
        errors["email"] = [_taken("email")]
    if contact.phone and others.filter(phone=contact.phone).exists():
        errors["phone"] = [_taken("phone")]
    if errors:
        raise ValidationError(errors)


def _save(contact: Contact, *, update_fields: list[str] | None = None) -> None:
    """Save; a concurrent duplicate that passed the check is caught by the unique constraints."""
    try:
        with transaction.atomic():
            contact.save(update_fields=update_fields)
    except IntegrityError as error:
        field = next((f for name, f in UNIQUE_FIELDS.items() if name in str(error)), None)
        if field is None:
            raise
        raise ValidationError({field: [_taken(field)]}) from None


def _taken(field: str) -> str:
    what = "email address" if field == "email" else "phone number"
    return f"Another contact of this tenant already has this {what}."
