"""Delivery receipts as each provider sends them: checked by the provider's own signature scheme
and read into plain `Receipt`s (JSON-ready, for the job that records them).

- Twilio: `X-Twilio-Signature`, base64 HMAC-SHA1 with the auth token of the URL called followed
  by every form field's name and value in name order. Status callbacks carry `MessageSid` and
  `MessageStatus`; an incoming message whose body is STOP (or a synonym) opts its sender out.
- Meta (WhatsApp Cloud API): `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body with the
  app secret>`; `statuses` give the timeline, an incoming "STOP" text opts out. The GET
  handshake echoes `hub.challenge` when `hub.verify_token` matches.
- Email ESPs: django-anymail's tracking webhook views check the request (basic auth with the
  sender's `webhook_secret`, and Mailgun's, Resend's and SendGrid's signatures) and normalise
  the events; a sender with neither has its receipts refused. Amazon SES events come through
  Amazon SNS, checked by basic auth only (anymail does not check SNS signatures): a request
  without it gets the 401 challenge SNS needs before it sends the credentials, and a signed
  SubscriptionConfirmation is confirmed by anymail with the sender's AWS keys (SNS's
  ConfirmSubscription in the topic's region, at CONVEYOR_AWS_ENDPOINT_URL when set).
"""

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict

from anymail.exceptions import AnymailAPIError, AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent
from botocore.exceptions import BotoCoreError, ClientError
from django.http import HttpRequest
from django.utils.module_loading import import_string

from communications.provider_clients import aws_params

STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
TWILIO_STATUSES = {
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
}
TWILIO_OPTED_OUT = "21610"  # "Attempt to send to unsubscribed recipient"
META_STATUSES = {"delivered": "delivered", "read": "read", "failed": "failed"}
ANYMAIL_STATUSES = {
    "delivered": "delivered",
    "opened": "read",
    "bounced": "bounced",
    "complained": "complained",
    "rejected": "failed",
    "failed": "failed",
}
ANYMAIL_VIEWS = {
    "sendgrid": "anymail.webhooks.sendgrid.SendGridTrackingWebhookView",
    "amazon_ses": "anymail.webhooks.amazon_ses.AmazonSESTrackingWebhookView",
    "mailgun": "anymail.webhooks.mailgun.MailgunTrackingWebhookView",
    "postmark": "anymail.webhooks.postmark.PostmarkTrackingWebhookView",
    "resend": "anymail.webhooks.resend.ResendTrackingWebhookView",
    "brevo": "anymail.webhooks.brevo.BrevoTrackingWebhookView",
}
# The secret that checks an ESP's signature, and the option anymail's view takes it as.
ANYMAIL_SIGNING = {
    "mailgun": ("webhook_signing_key", "webhook_signing_key"),
    "resend": ("signing_secret", "signing_secret"),
    "sendgrid": ("webhook_verification_key", "tracking_webhook_verification_key"),
}


class Forged(Exception):
    """The request is not signed by the sender's provider account."""


class Unauthenticated(Forged):
    """No credentials came: answered 401 with a challenge (SNS sends basic auth only then)."""


class CallbackFailed(Exception):
    """A call back to the provider the request asked for (SNS's subscription confirmation)
    failed: the provider should send the request again."""


class Receipt(TypedDict):
    """One step of one message's delivery, or an opt-out (`status` "opt_out", `address` set)."""

    provider_message_id: str
    status: str
    occurred_at: str
    detail: str
    address: str


def _receipt(
    message_id: str, status: str, at: datetime | None, detail: str = "", address: str = ""
) -> Receipt:
    return Receipt(
        provider_message_id=message_id[:200],
        status=status,
        occurred_at=(at or datetime.now(tz=UTC)).isoformat(),
        detail=detail[:500],
        address=address,
    )


def _opt_out(address: str) -> Receipt:
    return _receipt("", "opt_out", None, "The recipient asked to stop.", address)


# --- Twilio ------------------------------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The `X-Twilio-Signature` Twilio sends for a POST of `params` to `url`."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def read_twilio(request: HttpRequest, *, auth_token: str) -> list[Receipt]:
    """The receipts of a Twilio status callback or incoming message; Forged if unsigned."""
    params = {name: request.POST[name] for name in request.POST}
    expected = twilio_signature(auth_token, request.build_absolute_uri(), params)
    given = request.headers.get("X-Twilio-Signature", "")
    if not auth_token or not hmac.compare_digest(expected, given):
        raise Forged("The X-Twilio-Signature does not match.")
    status = params.get("MessageStatus") or params.get("SmsStatus", "")
    if status == "received":
        body = params.get("Body", "").strip().upper()
        address = params.get("From", "").removeprefix("whatsapp:")
        return [_opt_out(address)] if body in STOP_WORDS and address else []
    receipts = []
    if status in TWILIO_STATUSES and params.get("MessageSid"):
        detail = f"Twilio error {params['ErrorCode']}" if params.get("ErrorCode") else ""
        receipts.append(_receipt(params["MessageSid"], TWILIO_STATUSES[status], None, detail))
    if params.get("ErrorCode") == TWILIO_OPTED_OUT and params.get("To"):
        receipts.append(_opt_out(params["To"].removeprefix("whatsapp:")))
    return receipts


# --- Meta --------------------------------------------------------------------------------------


def meta_signature(app_secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` Meta sends with `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def read_meta(request: HttpRequest, *, app_secret: str) -> list[Receipt]:
    """The receipts of a WhatsApp Cloud API notification; Forged if unsigned."""
    given = request.headers.get("X-Hub-Signature-256", "")
    if not app_secret or not hmac.compare_digest(meta_signature(app_secret, request.body), given):
        raise Forged("The X-Hub-Signature-256 does not match.")
    try:
        document = json.loads(request.body)
    except ValueError:
        return []
    found: list[Receipt | None] = []
    for entry in document.get("entry", []) if isinstance(document, dict) else []:
        for change in entry.get("changes", []):
            value = change.get("value", {})
            found += [_meta_status(status) for status in value.get("statuses", [])]
            found += [_meta_stop(message) for message in value.get("messages", [])]
    return [receipt for receipt in found if receipt is not None]


def _meta_status(status: dict[str, Any]) -> Receipt | None:
    if status.get("status") not in META_STATUSES or not status.get("id"):
        return None
    stamp = str(status.get("timestamp") or "")
    at = datetime.fromtimestamp(int(stamp), tz=UTC) if stamp.isdigit() else None
    errors = status.get("errors") or [{}]
    detail = str(errors[0].get("title") or errors[0].get("message") or "")
    return _receipt(str(status["id"]), META_STATUSES[status["status"]], at, detail)


def _meta_stop(message: dict[str, Any]) -> Receipt | None:
    body = str((message.get("text") or {}).get("body", "")).strip().upper()
    if body not in STOP_WORDS or not message.get("from"):
        return None
    return _opt_out(f"+{str(message['from']).lstrip('+')}")


# --- Email, through django-anymail -------------------------------------------------------------


def read_anymail(request: HttpRequest, *, esp: str, secrets: Mapping[str, str]) -> list[Receipt]:
    """The receipts of an ESP's tracking webhook, checked and parsed by anymail's own view;
    Forged if unsigned, or if the sender stores nothing to check it with."""
    if not secrets.get("webhook_secret") and not _signing_secret(esp, secrets):
        raise Forged(f"The sender stores no webhook_secret to check {esp} receipts with.")
    try:
        view = import_string(ANYMAIL_VIEWS[esp])(**_view_options(esp, secrets))
    except ValueError as error:  # a verification key that is no public key
        raise Forged(f"The sender's {esp} signing key is unreadable: {error}") from None
    if esp == "amazon_ses" and not request.headers.get("Authorization"):
        raise Unauthenticated("Amazon SNS sends its basic auth only when asked for it.")
    try:
        view.run_validators(request)
    except (AnymailWebhookValidationFailure, AnymailAPIError) as error:  # unsigned, or no SNS
        raise Forged(str(error)) from None
    try:
        events = view.parse_events(request)
    except (BotoCoreError, ClientError) as error:
        raise CallbackFailed(f"The SNS subscription could not be confirmed: {error}") from None
    receipts: list[Receipt] = []
    for event in events:
        status = _anymail_status(event)
        if status and event.message_id:
            detail = event.reject_reason or event.description or ""
            receipts.append(_receipt(str(event.message_id), status, event.timestamp, detail))
        opting_out = status in ("bounced", "complained") or event.event_type == "unsubscribed"
        if opting_out and event.recipient:
            receipts.append(
                _receipt("", "opt_out", event.timestamp, event.event_type, event.recipient)
            )
    return receipts


def _signing_secret(esp: str, secrets: Mapping[str, str]) -> str:
    return secrets.get(ANYMAIL_SIGNING[esp][0], "") if esp in ANYMAIL_SIGNING else ""


def _view_options(esp: str, secrets: Mapping[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {"webhook_secret": secrets.get("webhook_secret") or []}
    if esp in ANYMAIL_SIGNING:
        options[ANYMAIL_SIGNING[esp][1]] = _signing_secret(esp, secrets)
    if esp == "amazon_ses":  # to confirm SNS subscriptions, in the topic's own region
        options |= aws_params(secrets, region=None)
    return options


def _anymail_status(event: AnymailTrackingEvent) -> str | None:
    """Our status for an anymail event. An SES soft bounce ("Transient": a full mailbox) failed
    the message without saying the address is bad, so it does not opt the contact out."""
    status = ANYMAIL_STATUSES.get(event.event_type)
    bounce = event.esp_event.get("bounce") if isinstance(event.esp_event, dict) else None
    if status == "bounced" and isinstance(bounce, dict) and bounce.get("bounceType") == "Transient":
        return "failed"
    return status
