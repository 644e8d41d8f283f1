"""A tenant's senders: save one (its secrets encrypted, kept when not given again), test it,
find the client a message goes through, and re-encrypt every secret after a key rotation."""

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formataddr
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from communications import secrets
from communications.addresses import normalize_email, normalize_phone
from communications.models import Channel, Provider, Sender
from communications.provider_clients import SenderAccount, build_client
from communications.providers import EmailProvider, Outgoing, SendError, get_provider
from communications.providers import Provider as Client
from communications.ssrf import UnsafeURL, check_url
from tenants.models import Tenant

logger = logging.getLogger(__name__)

AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")  # eu-west-1, us-gov-west-1


@dataclass(frozen=True)
class ProviderFields:
    """What a provider needs: the channels it carries, its settings and its secrets."""

    channels: tuple[str, ...]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ("api_url",)
    secrets: tuple[str, ...] = ()
    optional_secrets: tuple[str, ...] = ()


EMAIL_ESP = ProviderFields(
    channels=(Channel.EMAIL,), secrets=("api_key",), optional_secrets=("webhook_secret",)
)
PROVIDERS: dict[str, ProviderFields] = {
    Provider.DEPLOYMENT: ProviderFields(channels=tuple(Channel.values), optional=()),
    Provider.SENDGRID: ProviderFields(
        channels=(Channel.EMAIL,),
        secrets=("api_key",),
        optional_secrets=("webhook_secret", "webhook_verification_key"),
    ),
    # No api_url: where boto3 calls AWS is the deployment's CONVEYOR_AWS_ENDPOINT_URL.
    Provider.AMAZON_SES: ProviderFields(
        channels=(Channel.EMAIL,),
        required=("region",),
        optional=("configuration_set",),
        secrets=("access_key_id", "secret_access_key"),
        optional_secrets=("webhook_secret",),
    ),
    Provider.MAILGUN: ProviderFields(
        channels=(Channel.EMAIL,),
        optional=("api_url", "sender_domain"),
        secrets=("api_key",),
        optional_secrets=("webhook_secret", "webhook_signing_key"),
    ),
    Provider.POSTMARK: EMAIL_ESP,
    Provider.RESEND: ProviderFields(
        channels=(Channel.EMAIL,), secrets=("api_key",), optional_secrets=("signing_secret",)
    ),
    Provider.BREVO: EMAIL_ESP,
    Provider.TWILIO: ProviderFields(
        channels=(Channel.SMS, Channel.WHATSAPP), required=("account_sid",), secrets=("auth_token",)
    ),
    Provider.META: ProviderFields(
        channels=(Channel.WHATSAPP,),
        required=("phone_number_id",),
        secrets=("access_token", "app_secret", "verify_token"),
    ),
    Provider.HTTP: ProviderFields(
        channels=(Channel.SMS, Channel.WHATSAPP),
        required=("url",),
        optional=(),
        optional_secrets=("auth_header",),
    ),
}


def secret_names(provider: str) -> tuple[str, ...]:
    """Every secret `provider` takes, required ones first."""
    fields = PROVIDERS[provider]
    return (*fields.secrets, *fields.optional_secrets)


@transaction.atomic
def save_sender(
    *,
    tenant: Tenant,
    channel: str,
    provider: str,
    from_address: str,
    from_name: str = "",
    reply_to: str = "",
    options: Mapping[str, Any] | None = None,
    credentials: Mapping[str, str] | None = None,
    is_active: bool = True,
) -> Sender:
    """Create or replace the tenant's sender for `channel`; ValidationError per field.

    Credentials not given again are kept (they are never shown, so a form cannot send them
    back); an empty string removes an optional one.
    """
    sender = Sender.objects.for_tenant(tenant).select_for_update().filter(channel=channel).first()
    stored = secrets.decrypt(sender.credentials) if sender and sender.provider == provider else {}
    values = check_sender(
        tenant,
        channel=channel,
        provider=provider,
        from_address=from_address,
        reply_to=reply_to,
        options=dict(options or {}),
        credentials={**stored, **(credentials or {})},
    )
    sender = sender or Sender(tenant=tenant, channel=channel)
    sender.provider, sender.from_name, sender.is_active = provider, from_name.strip(), is_active
    sender.from_address, sender.reply_to = values["from_address"], values["reply_to"]
    sender.settings, sender.credentials = values["options"], secrets.encrypt(values["credentials"])
    sender.save()
    logger.info("tenant=%s sender=%s saved (%s, %s)", tenant.pk, sender.pk, channel, provider)
    return sender


def all_secret_names() -> list[str]:
    """Every credential name any provider takes (the admin form has a field for each)."""
    return list(dict.fromkeys(name for p in PROVIDERS for name in secret_names(p)))


def check_sender(tenant: Tenant, *, channel: str, provider: str, **values: Any) -> dict[str, Any]:
    """The sender's values cleaned; ValidationError per field for what the provider lacks."""
    if provider not in PROVIDERS:
        raise ValidationError({"provider": [f"Unknown provider {provider!r}."]})
    fields = PROVIDERS[provider]
    if channel not in fields.channels:
        carried = ", ".join(fields.channels)
        raise ValidationError({"provider": [f"{provider} sends {carried}, not {channel}."]})
    errors: dict[str, list[str]] = {}
    values["from_address"] = _address(tenant, channel, values["from_address"], errors)
    if values["reply_to"]:
        try:
            values["reply_to"] = normalize_email(values["reply_to"])
        except ValidationError as error:
            errors["reply_to"] = error.messages
    known = (*fields.required, *fields.optional)
    options = {k: str(v).strip() for k, v in values["options"].items() if str(v).strip()}
    unknown = sorted(set(options) - set(known))
    missing = [name for name in fields.required if not options.get(name)]
    if unknown or missing:
        errors["settings"] = [f"Unknown setting {name!r} for {provider}." for name in unknown]
        errors["settings"] += [f"{provider} needs {name!r}." for name in missing]
    if unsafe := _unsafe_urls(options):
        errors.setdefault("settings", []).extend(unsafe)
    if options.get("region") and not AWS_REGION.fullmatch(options["region"]):
        errors.setdefault("settings", []).append("region: an AWS region such as eu-west-1.")
    names = secret_names(provider)
    credentials = {k: v for k, v in values["credentials"].items() if k in names and v}
    if sorted(set(values["credentials"]) - set(names)):
        errors["credentials"] = [f"{provider} takes these credentials: {', '.join(names)}."]
    elif any(name not in credentials for name in fields.secrets):
        errors["credentials"] = [f"{provider} needs {', '.join(fields.secrets)}."]
    if errors:
        raise ValidationError(errors)
    return {**values, "options": options, "credentials": credentials}


def _unsafe_urls(options: dict[str, str]) -> list[str]:
    """A provider URL a tenant gives must be public, as a webhook URL must (no SSRF)."""
    problems = []
    for name in ("api_url", "url"):
        if options.get(name):
            try:
                check_url(options[name])
            except UnsafeURL as error:
                problems.append(f"{name}: {str(error).replace('webhooks', 'providers')}")
    return problems


def _address(tenant: Tenant, channel: str, value: str, errors: dict[str, list[str]]) -> str:
    try:
        if channel == Channel.EMAIL:
            return normalize_email(value)
        return normalize_phone(value, region=tenant.default_region)
    except ValidationError as error:
        errors["from_address"] = error.messages
        return value


def delete_sender(sender: Sender) -> None:
    """Remove the sender: the tenant's channel goes back to the deployment's provider."""
    sender.delete()


def active_sender(tenant: Tenant, channel: str) -> Sender | None:
    """The tenant's active sender for `channel`, if it has one of its own."""
    return Sender.objects.for_tenant(tenant).filter(channel=channel, is_active=True).first()


def receipt_url(sender: Sender) -> str:
    """Where the sender's provider posts delivery receipts ("" for the deployment's)."""
    if sender.provider == Provider.DEPLOYMENT:
        return ""
    path = reverse("receipt", kwargs={"provider": sender.provider, "sender_id": sender.pk})
    return f"{settings.CONVEYOR_PUBLIC_URL}{path}"


def sender_client(sender: Sender) -> Client:
    """The client that sends through `sender` (its secrets decrypted only here)."""
    if sender.provider == Provider.DEPLOYMENT:
        if sender.channel != Channel.EMAIL:
            return get_provider(sender.channel)
        address = formataddr((sender.from_name, sender.from_address))
        return EmailProvider(sender=address, reply_to=sender.reply_to)
    callback = receipt_url(sender) if settings.CONVEYOR_PUBLIC_URL else ""
    account = SenderAccount(
        provider=sender.provider,
        channel=sender.channel,
        from_address=sender.from_address,
        from_name=sender.from_name,
        reply_to=sender.reply_to,
        options=sender.settings,
        secrets=secrets.decrypt(sender.credentials),
        status_callback=callback,
    )
    return build_client(account)


def send_test(sender: Sender, *, to: str) -> str:
    """Send a short test through `sender` now; records and returns what happened."""
    try:
        to = (
            normalize_email(to)
            if sender.channel == Channel.EMAIL
            else normalize_phone(to, region=sender.tenant.default_region)
        )
    except ValidationError as error:
        raise ValidationError({"to": error.messages}) from None
    test = Outgoing(
        channel=sender.channel,
        to=to,
        subject="Conveyor test message",
        text=f"This is a test of {sender.tenant.name}'s {sender.get_channel_display()} sender.",
        reference=f"test-{sender.pk}",
    )
    try:
        provider_id = sender_client(sender).send(test)  # its errors come scrubbed
        result = f"Sent to {to} (provider id {provider_id})."
    except (SendError, secrets.UnreadableSecret) as error:
        result = f"Failed: {error}"[:500]
    Sender.objects.filter(pk=sender.pk).update(last_test_at=timezone.now(), last_test_result=result)
    sender.last_test_result = result
    return result


def rotate_sender_credentials() -> int:
    """Re-encrypt every sender's credentials with the first key; returns how many."""
    rotated = 0
    for sender in Sender.objects.exclude(credentials="").only("pk", "credentials").iterator():
        Sender.objects.filter(pk=sender.pk).update(credentials=secrets.rotate(sender.credentials))
        rotated += 1
    return rotated


@dataclass(frozen=True)
class Route:
    """How a tenant's channel sends now: its own sender's client, or the deployment's."""

    sender: Sender | None
    client: Client


def route_for(tenant: Tenant, channel: str) -> Route:
    """The client `channel` sends through for `tenant` (UnreadableSecret if it cannot open it)."""
    sender = active_sender(tenant, channel)
    if sender is None:
        return Route(sender=None, client=get_provider(channel))
    return Route(sender=sender, client=sender_client(sender))
