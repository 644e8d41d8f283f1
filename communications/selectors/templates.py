"""Reads of message templates: a tenant's own, the built-in defaults, and which one a name means.

Built-in defaults are files under templates/communications/messages/<name>/: `subject.txt`,
`body.html` (set inside `_layout.html`), `body.txt`, and `sms.txt` for SMS and WhatsApp where a
short message makes sense. A tenant's template of the same name and channel replaces one.
"""

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from communications.models import Channel, MessageTemplate
from tenants.models import Tenant

BUILTIN_DIR = Path(settings.BASE_DIR) / "templates" / "communications" / "messages"
LAYOUT_MARK = "{# content #}"

SAMPLE_CONTACT: dict[str, Any] = {
    "id": 1,
    "name": "Ada Lovelace",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "phone": "+14155550123",
    "company": "Analytical Engines Ltd",
    "tags": ["vip", "newsletter"],
    "opted_out": False,
    "custom_fields": {},
}
SAMPLE_USER: dict[str, Any] = {
    "username": "grace",
    "name": "Grace Hopper",
    "first_name": "Grace",
    "last_name": "Hopper",
    "email": "grace@example.com",
}
SAMPLE_NOTIFICATION: dict[str, Any] = {
    "title": "Your import is complete",
    "body": "1,204 contacts were imported.",
    "link": "https://app.example.com/contacts/imports/42",
}


class UnknownTemplate(ValidationError):
    """No template of that name for that channel, neither the tenant's own nor a built-in."""

    def __init__(self, name: str, channel: str) -> None:
        self.name, self.channel = name, channel
        super().__init__({"template": [f"There is no {channel} template named {name!r}."]})

    def __str__(self) -> str:
        return f"There is no {self.channel} template named {self.name!r}."


@dataclass(frozen=True)
class BuiltinTemplate:
    """A default template shipped with Conveyor; it reads like a MessageTemplate."""

    name: str
    channel: str
    description: str
    subject: str = ""
    html_body: str = ""
    text_body: str = ""
    body: str = ""
    sample_variables: dict[str, Any] = field(default_factory=dict)
    is_builtin: bool = True

    def __str__(self) -> str:
        return f"{self.name} ({self.channel}, built-in)"


# What each built-in is for, and example values of the variables it uses beyond `contact`,
# `user`, `notification` and `tenant` (those are always part of the sample).
BUILTINS: dict[str, tuple[str, dict[str, Any]]] = {
    "welcome": (
        "Welcomes a new contact. Optional: action_url (a Get started button).",
        {"action_url": "https://app.example.com/start"},
    ),
    "password-reset": (
        "Sends a user the link that sets a new password. Needs reset_url; optional: "
        "expires_in (e.g. '24 hours').",
        {"reset_url": "https://app.example.com/reset/5f2a9c", "expires_in": "24 hours"},
    ),
    "contact-created": (
        "Tells a team member that a contact was added. Uses contact; optional: created_by, "
        "contact_url.",
        {"created_by": "Grace Hopper", "contact_url": "https://app.example.com/contacts/1"},
    ),
    "activity-reminder": (
        "Reminds of an activity that is due. Needs activity.title and activity.due (text); "
        "optional: activity.notes, activity_url.",
        {
            "activity": {
                "title": "Call Ada about the renewal",
                "due": "Tuesday 24 November at 10:00",
                "notes": "She asked for the new pricing sheet.",
            },
            "activity_url": "https://app.example.com/activities/7",
        },
    ),
    "lead-assigned": (
        "Tells a team member that a lead (a contact) is now theirs. Uses contact; optional: "
        "assigned_by, lead_url.",
        {"assigned_by": "Grace Hopper", "lead_url": "https://app.example.com/contacts/1"},
    ),
    "export-ready": (
        "Says that a contact export can be downloaded. Optional: export.format, export.rows, "
        "download_url (else notification.link).",
        {
            "export": {"format": "XLSX", "rows": 1204},
            "download_url": "https://app.example.com/contacts/exports/9/download",
        },
    ),
    "import-completed": (
        "Reports a finished contact import. Optional: import.file_name and the counts "
        "import.new, import.updated, import.skipped, import.invalid; link (else "
        "notification.link).",
        {
            "import": {
                "file_name": "trade-show-leads.csv",
                "new": 1180,
                "updated": 24,
                "skipped": 3,
                "invalid": 2,
            },
            "link": "https://app.example.com/contacts/imports/42",
        },
    ),
    "campaign-finished": (
        "Tells whoever started a campaign that it ended, with its totals. Needs campaign.name, "
        "campaign.status and the counts campaign.recipients, .sent, .failed, .skipped, "
        ".canceled; optional: campaign_url, failed_url (absolute links).",
        {
            "campaign": {
                "name": "November newsletter",
                "status": "finished",
                "recipients": 1204,
                "sent": 1180,
                "failed": 4,
                "skipped": 20,
                "canceled": 0,
            },
            "campaign_url": "https://app.example.com/admin/communications/campaign/7/change/",
            "failed_url": "https://app.example.com/admin/communications/message/?campaign=7",
        },
    ),
    "report-ready": (
        "Says that a report has been generated. Optional: report.name, report.format, "
        "download_url (else notification.link).",
        {
            "report": {"name": "Messaging delivery, October 2026", "format": "PDF"},
            "download_url": "https://app.example.com/reports/12/download",
        },
    ),
}


def base_sample() -> dict[str, Any]:
    """The sample every preview and check starts from."""
    return {
        "contact": SAMPLE_CONTACT,
        "user": SAMPLE_USER,
        "notification": SAMPLE_NOTIFICATION,
    }


@functools.cache
def builtin_templates() -> tuple[BuiltinTemplate, ...]:
    """Every built-in default, by name then channel (email, sms, whatsapp)."""
    layout = (BUILTIN_DIR / "_layout.html").read_text()
    templates = []
    for name, (description, sample) in BUILTINS.items():
        folder = BUILTIN_DIR / name
        templates.append(
            BuiltinTemplate(
                name=name,
                channel=Channel.EMAIL,
                description=description,
                subject=(folder / "subject.txt").read_text().strip(),
                html_body=layout.replace(LAYOUT_MARK, (folder / "body.html").read_text().strip()),
                text_body=(folder / "body.txt").read_text(),
                sample_variables=sample,
            )
        )
        short = folder / "sms.txt"
        if short.exists():
            body = short.read_text().strip()
            for channel in (Channel.SMS, Channel.WHATSAPP):
                templates.append(
                    BuiltinTemplate(
                        name=name,
                        channel=channel,
                        description=description,
                        body=body,
                        sample_variables=sample,
                    )
                )
    return tuple(templates)


def get_builtin(name: str, *, channel: str) -> BuiltinTemplate | None:
    for template in builtin_templates():
        if (template.name, template.channel) == (name, channel):
            return template
    return None


def list_templates(
    *, tenant: Tenant, channel: str = "", search: str = ""
) -> QuerySet[MessageTemplate]:
    templates = MessageTemplate.objects.for_tenant(tenant)
    if channel:
        templates = templates.filter(channel=channel)
    if search:
        templates = templates.filter(name__icontains=search) | templates.filter(
            description__icontains=search
        )
    return templates.order_by("name", "channel")


def get_template(*, tenant: Tenant, pk: int) -> MessageTemplate:
    """The tenant's template; another tenant's raises DoesNotExist like a missing one."""
    return MessageTemplate.objects.for_tenant(tenant).get(pk=pk)


def overridden_names(*, tenant: Tenant) -> set[tuple[str, str]]:
    """(name, channel) of the tenant's templates: the built-ins these replace."""
    return set(MessageTemplate.objects.for_tenant(tenant).values_list("name", "channel"))


def resolve_template(
    name: str, *, tenant: Tenant, channel: str
) -> MessageTemplate | BuiltinTemplate:
    """The tenant's template of that name and channel, else the built-in; else UnknownTemplate."""
    own = MessageTemplate.objects.for_tenant(tenant).filter(name=name, channel=channel).first()
    if own is not None:
        return own
    builtin = get_builtin(name, channel=channel)
    if builtin is None:
        raise UnknownTemplate(name, channel)
    return builtin
