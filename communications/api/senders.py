"""API views: the tenant's senders (one per channel; admins and owners) and the public receipt
URL each provider posts delivery receipts to.

Credentials are write-only: an answer names the ones stored, never their values.
"""

import logging
from typing import Any
from uuid import UUID

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import URLPattern, URLResolver, path
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from communications import receipts, secrets
from communications.models import Channel, Provider, Sender
from communications.provider_clients import scrub
from communications.selectors.senders import get_sender, list_senders, stored_secret_names
from communications.services.receipts import accept_receipts
from communications.services.senders import delete_sender, receipt_url, save_sender, send_test
from jobs.api.common import errors
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, TenantRequest

logger = logging.getLogger(__name__)

TAGS = ["senders"]


def channel_of(value: str) -> str:
    if value not in Channel.values:
        raise NotFound()
    return value


class SenderInput(serializers.Serializer):
    provider = serializers.ChoiceField(choices=Provider.choices)
    from_address = serializers.CharField(max_length=254)
    from_name = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    reply_to = serializers.CharField(max_length=254, required=False, default="", allow_blank=True)
    settings = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        default=dict,
        help_text="The provider's non-secret settings (account_sid, phone_number_id, region, "
        "api_url…).",
    )
    credentials = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        default=dict,
        write_only=True,
        help_text="Secrets (api_key, auth_token, access_token, app_secret…): stored encrypted, "
        "never shown again. Leave one out to keep the stored value.",
    )
    is_active = serializers.BooleanField(required=False, default=True)


class SenderOutput(serializers.ModelSerializer):
    credentials_stored = serializers.SerializerMethodField(
        help_text="Names of the stored credentials (never their values)."
    )
    receipt_url = serializers.SerializerMethodField(
        help_text="Give this to the provider as its status callback / webhook URL."
    )

    class Meta:
        model = Sender
        fields = [
            "id",
            "channel",
            "provider",
            "from_name",
            "from_address",
            "reply_to",
            "settings",
            "credentials_stored",
            "receipt_url",
            "is_active",
            "last_test_at",
            "last_test_result",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_credentials_stored(self, sender: Sender) -> list[str]:
        return stored_secret_names(sender)

    def get_receipt_url(self, sender: Sender) -> str:
        return receipt_url(sender)


class SenderTestInput(serializers.Serializer):
    to = serializers.CharField(max_length=254, help_text="An address or number to send a test to.")


class SenderTestOutput(serializers.Serializer):
    result = serializers.CharField()


class AdminsOnly(APIView):
    permission_classes = [HasTenantRole]
    access_area = "senders"


class SenderListView(AdminsOnly):
    @extend_schema(
        operation_id="senders_list",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={200: SenderOutput(many=True), **errors(403)},
    )
    def get(self, request: TenantRequest) -> Response:
        """The tenant's own senders; a channel without one uses the deployment's provider."""
        return Response(SenderOutput(list_senders(tenant=request.tenant), many=True).data)


class SenderDetailView(AdminsOnly):
    @extend_schema(
        operation_id="senders_retrieve",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={200: SenderOutput, **errors(403, 404)},
    )
    def get(self, request: TenantRequest, channel: str) -> Response:
        sender = get_sender(tenant=request.tenant, channel=channel_of(channel))
        return Response(SenderOutput(sender).data)

    @extend_schema(
        operation_id="senders_save",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=SenderInput,
        responses={200: SenderOutput, **errors(400, 403, 404)},
    )
    def put(self, request: TenantRequest, channel: str) -> Response:
        """Set the channel's sender: its provider, address, settings and credentials."""
        data = SenderInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        sender = save_sender(
            tenant=request.tenant,
            channel=channel_of(channel),
            options=values.pop("settings"),
            **values,
        )
        return Response(SenderOutput(sender).data)

    @extend_schema(
        operation_id="senders_destroy",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: TenantRequest, channel: str) -> Response:
        """Remove the sender (and its credentials): the deployment's provider sends again."""
        delete_sender(get_sender(tenant=request.tenant, channel=channel_of(channel)))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SenderTestView(AdminsOnly):
    @extend_schema(
        operation_id="senders_test",
        tags=TAGS,
        parameters=[TENANT_PARAMETER],
        request=SenderTestInput,
        responses={200: SenderTestOutput, **errors(400, 403, 404)},
    )
    def post(self, request: TenantRequest, channel: str) -> Response:
        """Send a test message through the sender now and say what the provider answered."""
        sender = get_sender(tenant=request.tenant, channel=channel_of(channel))
        data = SenderTestInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response({"result": send_test(sender, to=data.validated_data["to"])})


@csrf_exempt
def receipt_view(request: HttpRequest, provider: str, sender_id: UUID) -> HttpResponseBase:
    """Where a provider posts delivery receipts: checked by its signature, recorded by a job."""
    sender = Sender.objects.select_related("tenant").filter(pk=sender_id, provider=provider).first()
    if sender is None:
        return HttpResponse(status=404)
    try:
        values = secrets.decrypt(sender.credentials)
        if provider == Provider.META and request.method == "GET":
            return _meta_handshake(request, verify_token=values.get("verify_token", ""))
        if request.method != "POST":
            return HttpResponse(status=405)
        found = _read(request, sender, values)
    except receipts.Unauthenticated:
        answer = HttpResponse("Unauthorized: send the receipt URL's basic auth.", status=401)
        answer["WWW-Authenticate"] = 'Basic realm="Conveyor receipts"'
        return answer
    except receipts.CallbackFailed as error:
        text = scrub(str(error), values)
        logger.warning("tenant=%s sender=%s: %s", sender.tenant_id, sender.pk, text)
        return HttpResponse("The provider could not be called back: try again.", status=502)
    except (receipts.Forged, secrets.UnreadableSecret) as error:
        logger.warning(
            "tenant=%s sender=%s: receipt refused: %s", sender.tenant_id, sender.pk, error
        )
        return HttpResponse("Forbidden: the signature does not match.", status=403)
    accept_receipts(sender, found)
    return HttpResponse(status=200)


def _read(request: HttpRequest, sender: Sender, values: dict[str, Any]) -> list[receipts.Receipt]:
    if sender.provider == Provider.TWILIO:
        return receipts.read_twilio(request, auth_token=values.get("auth_token", ""))
    if sender.provider == Provider.META:
        return receipts.read_meta(request, app_secret=values.get("app_secret", ""))
    if sender.provider in receipts.ANYMAIL_VIEWS:
        return receipts.read_anymail(request, esp=sender.provider, secrets=values)
    raise receipts.Forged(f"{sender.provider} senders have no receipts.")


def _meta_handshake(request: HttpRequest, *, verify_token: str) -> HttpResponse:
    given = request.GET.get("hub.verify_token", "")
    matches = bool(verify_token) and constant_time_compare(given, verify_token)
    if request.GET.get("hub.mode") != "subscribe" or not matches:
        raise receipts.Forged("The hub.verify_token does not match.")
    return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")


urlpatterns: list[URLPattern | URLResolver] = [
    path("senders/", SenderListView.as_view(), name="sender-list"),
    path("senders/<str:channel>/", SenderDetailView.as_view(), name="sender-detail"),
    path("senders/<str:channel>/test/", SenderTestView.as_view(), name="sender-test"),
    path("receipts/<str:provider>/<uuid:sender_id>/", receipt_view, name="receipt"),
]
