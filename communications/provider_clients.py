"""The providers a tenant's own sender can use, built from its settings and decrypted secrets.

Email goes through django-anymail's backends (SendGrid, Amazon SES, Mailgun, Postmark, Resend,
Brevo); SMS and WhatsApp through Twilio's Messages API, Meta's WhatsApp Cloud API or the generic
HTTP provider. Every client answers as `providers.py` says: the provider's message id, or
PermanentSendError / RetryableSendError. No error message carries a credential: each is
scrubbed of the sender's secret values before it leaves the client.
"""

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formataddr
from typing import Any
from urllib.parse import urlencode

import boto3
import urllib3
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.conf import settings
from django.utils.module_loading import import_string

from communications.providers import (
    HttpProvider,
    Outgoing,
    PermanentSendError,
    Provider,
    RetryableSendError,
    SendError,
    build_email,
    pool_size,
    read_answer,
    retry_after,
)

logger = logging.getLogger(__name__)

REDACTED = "[redacted]"
ANYMAIL_BACKENDS = {
    "sendgrid": "anymail.backends.sendgrid.EmailBackend",
    "amazon_ses": "anymail.backends.amazon_ses.EmailBackend",
    "mailgun": "anymail.backends.mailgun.EmailBackend",
    "postmark": "anymail.backends.postmark.EmailBackend",
    "resend": "anymail.backends.resend.EmailBackend",
    "brevo": "anymail.backends.brevo.EmailBackend",
}
API_KEY_OPTION = {"postmark": "server_token"}  # the others' backends call it api_key
# Error codes AWS answers when the account sends too fast (SES v2 says 429, older paths 400).
AWS_THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException"}
TWILIO_API = "https://api.twilio.com"
META_API = "https://graph.facebook.com/v21.0"


def timeout() -> float:
    """Seconds one provider call may take (CONVEYOR_SENDER_TIMEOUT)."""
    return float(settings.CONVEYOR_SENDER_TIMEOUT)


def scrub(text: str, secrets: Mapping[str, Any]) -> str:
    """`text` with every secret value replaced by "[redacted]"."""
    for value in secrets.values():
        if isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, REDACTED)
    return text


@dataclass
class Scrubbed:
    """Wraps a client so that whatever it raises is scrubbed of `secrets`."""

    client: Provider
    secrets: Mapping[str, Any] = field(repr=False)

    def send(self, message: Outgoing) -> str:
        try:
            return self.client.send(message)
        except RetryableSendError as error:
            raise RetryableSendError(scrub(str(error), self.secrets), delay=error.delay) from None
        except SendError as error:
            raise type(error)(scrub(str(error), self.secrets)) from None
        except Exception as error:
            text = scrub(f"{type(error).__name__}: {error}", self.secrets)
            raise RetryableSendError(f"The provider client raised {text}") from None


def aws_params(secrets: Mapping[str, Any], *, region: str | None) -> dict[str, Any]:
    """anymail's boto3 options for an AWS account: its keys and region, our timeout and no
    retries of boto3's own (the job retries), at CONVEYOR_AWS_ENDPOINT_URL when it is set."""
    client: dict[str, Any] = {
        "config": {
            "connect_timeout": timeout(),
            "read_timeout": timeout(),
            "retries": {"total_max_attempts": 1},
            "max_pool_connections": pool_size(),
        }
    }
    if settings.CONVEYOR_AWS_ENDPOINT_URL:
        client["endpoint_url"] = settings.CONVEYOR_AWS_ENDPOINT_URL
    session = {
        "aws_access_key_id": secrets.get("access_key_id", ""),
        "aws_secret_access_key": secrets.get("secret_access_key", ""),
        "region_name": region,
    }
    return {"session_params": session, "client_params": client}


# Building a boto3 client costs tens of milliseconds of CPU (it loads the service's model), so
# each process keeps the last few accounts' clients (boto3's clients are thread-safe); a key or
# region change is another account, and the oldest falls out.
AWS_CLIENTS_KEPT = 16
_aws_clients: OrderedDict[str, Any] = OrderedDict()
_aws_clients_lock = threading.Lock()


def aws_client(service: str, *, account: Mapping[str, Any], backend: Any) -> Any:
    """The process's boto3 client for `account` (anymail's options for it, as JSON), built
    from `backend`'s own session and client parameters the first time."""
    key = json.dumps([service, account], sort_keys=True, default=str)
    key = hashlib.sha256(key.encode()).hexdigest()
    with _aws_clients_lock:
        if key in _aws_clients:
            _aws_clients.move_to_end(key)
            return _aws_clients[key]
    session = boto3.session.Session(**backend.session_params)
    client = session.client(service, **backend.client_params)
    with _aws_clients_lock:
        _aws_clients[key] = client
        while len(_aws_clients) > AWS_CLIENTS_KEPT:
            _aws_clients.popitem(last=False)
    return client


def _backend_options(
    esp: str, secrets: Mapping[str, Any], options: Mapping[str, Any]
) -> dict[str, Any]:
    if esp == "amazon_ses":
        kwargs = aws_params(secrets, region=str(options.get("region", "")))
        if options.get("configuration_set"):
            kwargs["configuration_set_name"] = options["configuration_set"]
        return kwargs
    kwargs = {API_KEY_OPTION.get(esp, "api_key"): secrets.get("api_key", "")}
    kwargs |= {k: v for k, v in options.items() if k in ("api_url", "sender_domain") and v}
    return kwargs | {"requests_timeout": timeout()}


class AnymailProvider:
    """Email through one django-anymail backend with the sender's account and address."""

    def __init__(
        self, *, esp: str, secrets: Mapping[str, Any], options: Mapping[str, Any], sender: str
    ) -> None:
        kwargs = _backend_options(esp, secrets, options)
        account = dict(kwargs)  # read before anymail takes its keys out of kwargs
        self.backend = import_string(ANYMAIL_BACKENDS[esp])(fail_silently=False, **kwargs)
        if esp == "amazon_ses":  # the process's client for this account, opened already
            self.backend.client = aws_client("sesv2", account=account, backend=self.backend)
        self.opening = threading.Lock()
        self.sender = sender
        self.reply_to = str(options.get("reply_to") or "")

    def send(self, message: Outgoing) -> str:
        email = build_email(
            message,
            sender=self.sender,
            reply_to=self.reply_to,
            headers={"X-Conveyor-Message": message.reference},
        )
        try:
            with self.opening:
                # Opened once and kept: a campaign batch's threads share this client, and
                # anymail's own open-and-close per send would close it under another thread.
                self.backend.open()
            self.backend.send_messages([email])
        except AnymailRecipientsRefused as error:
            raise PermanentSendError(f"The provider refused the recipient: {error}") from None
        except AnymailAPIError as error:
            raise _anymail_error(error) from None
        status = email.anymail_status  # type: ignore[attr-defined]
        return str(status.message_id or message.reference)[:200]


def _anymail_error(error: AnymailAPIError) -> SendError:
    status, code, header = _answered(error)
    text = f"{status} {code}: {error.args[0]}" if code else str(error)
    if status is None or status == 429 or status >= 500 or code in AWS_THROTTLED:
        return RetryableSendError(f"The email provider answered: {text}", delay=retry_after(header))
    return PermanentSendError(f"The email provider refused it: {text}")


def _answered(error: AnymailAPIError) -> tuple[int | None, str, str | None]:
    """The HTTP status, AWS error code and Retry-After of a failed send (None: no answer)."""
    response = error.response
    if isinstance(response, dict):  # boto3 (Amazon SES): botocore's parsed error answer
        meta = response.get("ResponseMetadata", {})
        code = str(response.get("Error", {}).get("Code", ""))
        return meta.get("HTTPStatusCode"), code, meta.get("HTTPHeaders", {}).get("retry-after")
    header = response.headers.get("Retry-After") if response is not None else None
    return error.status_code, "", header


class TwilioProvider:
    """SMS (and WhatsApp, `whatsapp:` numbers) through Twilio's Messages API.

    POST {api_url}/2010-04-01/Accounts/{account_sid}/Messages.json, form-encoded, HTTP basic
    auth with the account SID and auth token; a `StatusCallback` asks for delivery receipts.
    """

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        sender: str,
        api_url: str = TWILIO_API,
        status_callback: str = "",
        whatsapp: bool = False,
    ) -> None:
        self.url = f"{api_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.headers = urllib3.make_headers(basic_auth=f"{account_sid}:{auth_token}")
        self.headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.prefix = "whatsapp:" if whatsapp else ""
        self.sender, self.status_callback = sender, status_callback
        self.pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(total=timeout()), retries=False, maxsize=pool_size()
        )

    def send(self, message: Outgoing) -> str:
        form = {
            "To": f"{self.prefix}{message.to}",
            "From": f"{self.prefix}{self.sender}",
            "Body": message.text,
        }
        if self.status_callback:
            form["StatusCallback"] = self.status_callback
        try:
            response = self.pool.request(
                "POST", self.url, body=urlencode(form).encode(), headers=self.headers
            )
        except urllib3.exceptions.HTTPError as error:
            raise RetryableSendError(f"Twilio could not be reached: {error}") from None
        return str(read_answer(response).get("sid") or message.reference)[:200]


class MetaWhatsAppProvider:
    """WhatsApp through Meta's Cloud API: POST {api_url}/{phone_number_id}/messages.

    A message with a `template` (an approved WhatsApp template: name, language, parameters)
    goes as a template message with those body variables; any other as text.
    """

    def __init__(self, *, phone_number_id: str, access_token: str, api_url: str = META_API):
        self.url = f"{api_url.rstrip('/')}/{phone_number_id}/messages"
        self.headers = {
            "Authorization": f"Bearer {access_token}",
            "Content-Type": "application/json",
        }
        self.pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(total=timeout()), retries=False, maxsize=pool_size()
        )

    def send(self, message: Outgoing) -> str:
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "to": message.to.lstrip("+"),
            "biz_opaque_callback_data": message.reference,
        }
        body |= _meta_content(message)
        try:
            response = self.pool.request(
                "POST", self.url, body=json.dumps(body).encode(), headers=self.headers
            )
        except urllib3.exceptions.HTTPError as error:
            raise RetryableSendError(f"Meta could not be reached: {error}") from None
        messages = read_answer(response).get("messages") or [{}]
        return str(messages[0].get("id") or message.reference)[:200]


def _meta_content(message: Outgoing) -> dict[str, Any]:
    template = message.template
    if not template:
        return {"type": "text", "text": {"body": message.text}}
    parameters = [{"type": "text", "text": str(value)} for value in template.get("parameters", [])]
    content: dict[str, Any] = {
        "name": template["name"],
        "language": {"code": template.get("language") or "en_US"},
    }
    if parameters:
        content["components"] = [{"type": "body", "parameters": parameters}]
    return {"type": "template", "template": content}


@dataclass(frozen=True)
class SenderAccount:
    """What a client needs of a sender: its provider, channel, address, settings and secrets."""

    provider: str
    channel: str
    from_address: str
    from_name: str
    reply_to: str
    options: Mapping[str, Any]
    secrets: Mapping[str, Any] = field(repr=False)
    status_callback: str = ""


def build_client(account: SenderAccount) -> Provider:
    """The client that sends through `account`, its errors scrubbed of the account's secrets."""
    return Scrubbed(_client(account), account.secrets)


def _client(account: SenderAccount) -> Provider:
    options, secrets = account.options, account.secrets
    if account.provider in ANYMAIL_BACKENDS:
        sender = formataddr((account.from_name, account.from_address))
        return AnymailProvider(
            esp=account.provider,
            secrets=secrets,
            options={**options, "reply_to": account.reply_to},
            sender=sender,
        )
    if account.provider == "twilio":
        return TwilioProvider(
            account_sid=str(options.get("account_sid", "")),
            auth_token=str(secrets.get("auth_token", "")),
            sender=account.from_address,
            api_url=str(options.get("api_url") or TWILIO_API),
            status_callback=account.status_callback,
            whatsapp=account.channel == "whatsapp",
        )
    if account.provider == "meta":
        return MetaWhatsAppProvider(
            phone_number_id=str(options.get("phone_number_id", "")),
            access_token=str(secrets.get("access_token", "")),
            api_url=str(options.get("api_url") or META_API),
        )
    return HttpProvider(
        url=str(options.get("url", "")),
        auth_header=str(secrets.get("auth_header", "")),
        sender=account.from_address,
        timeout=timeout(),
    )
