"""API views: messages — send one (agent and up), list with filters, detail with its job."""

from datetime import datetime
from typing import Any

import django_filters
from django.db.models import QuerySet
from django.urls import URLPattern, URLResolver, path
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from communications.models import Channel, Contact, DeliveryEvent, Message
from communications.selectors.messages import get_message, list_messages
from communications.selectors.senders import delivery_timeline
from communications.services.messages import cancel_message, send_message
from jobs.api.common import CreatedAtCursorPagination, errors, tenant_request
from jobs.api.filters import TimeFilter
from jobs.models import Job
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, TenantRequest

TENANT_ERRORS = (400, 401, 403, 404, 429)
MAX_ID = 2**63 - 1


def object_id(value: str) -> int:
    """A numeric id from the URL; anything else answers 404 like another tenant's object."""
    if not value.isdigit() or len(value) > 18:
        raise NotFound()
    return int(value)


class MessageJobOutput(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = ["id", "kind", "queue", "status", "attempt", "max_attempts", "error_message"]
        read_only_fields = fields


class SendAtField(serializers.DateTimeField):
    """An ISO 8601 time; one without an offset stays naive, for the service to read in the
    request's or the tenant's time zone."""

    def enforce_timezone(self, value: datetime) -> datetime:
        return value


class DeliveryEventOutput(serializers.ModelSerializer):
    class Meta:
        model = DeliveryEvent
        fields = ["status", "occurred_at", "detail"]
        read_only_fields = fields


class WhatsAppTemplateInput(serializers.Serializer):
    name = serializers.CharField(max_length=512, help_text="The approved template's name.")
    language = serializers.CharField(max_length=15, default="en_US")
    parameters = serializers.ListField(
        child=serializers.CharField(max_length=1024), required=False, default=list
    )


class MessageOutput(serializers.ModelSerializer):
    delivery_status = serializers.ChoiceField(
        choices=Message.Delivery.choices,
        allow_blank=True,
        read_only=True,
        help_text="The latest receipt; blank until the first arrives.",
    )

    class Meta:
        model = Message
        fields = [
            "id",
            "channel",
            "recipient",
            "contact",
            "template",
            "subject",
            "text",
            "status",
            "provider_message_id",
            "error",
            "attempts",
            "job",
            "campaign",
            "sender",
            "send_at",
            "delivery_status",
            "delivery_updated_at",
            "created_at",
            "sent_at",
        ]
        read_only_fields = fields


class MessageDetailOutput(MessageOutput):
    job = MessageJobOutput(allow_null=True, help_text="The job that sends it, with its status.")
    timeline = serializers.SerializerMethodField(
        help_text="Delivery receipts after `sent`: delivered, read, bounced, complained, failed."
    )

    class Meta(MessageOutput.Meta):
        fields = [*MessageOutput.Meta.fields, "html", "provider_template", "timeline"]
        read_only_fields = fields

    @extend_schema_field(DeliveryEventOutput(many=True))
    def get_timeline(self, message: Message) -> list[dict[str, Any]]:
        return list(DeliveryEventOutput(delivery_timeline(message), many=True).data)


MESSAGE_EXAMPLE: dict[str, Any] = {
    "id": 812,
    "channel": "sms",
    "recipient": "+14155550123",
    "contact": 42,
    "template": "welcome",
    "subject": "",
    "text": "Welcome to Acme, Ada!",
    "status": "queued",
    "provider_message_id": "",
    "error": "",
    "attempts": 0,
    "job": "6f1c2a4e-8d0b-4c55-9a3e-1f2b3c4d5e6f",
    "campaign": None,
    "sender": None,
    "send_at": None,
    "delivery_status": "",
    "delivery_updated_at": None,
    "created_at": "2026-11-22T16:30:00.123456Z",
    "sent_at": None,
}


class MessageFilter(django_filters.FilterSet):
    """Repeat status or channel to match any of the values: `?status=failed&status=skipped`."""

    status = django_filters.MultipleChoiceFilter(choices=Message.Status.choices)
    channel = django_filters.MultipleChoiceFilter(choices=Channel.choices)
    campaign = django_filters.NumberFilter(field_name="campaign_id")
    contact = django_filters.NumberFilter(field_name="contact_id")
    recipient = django_filters.CharFilter()
    template = django_filters.CharFilter()
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Message
        fields: list[str] = []


class MessageListView(generics.ListAPIView):
    """`messages/`: GET lists the tenant's messages (viewer and up), POST sends one (agent up)."""

    permission_classes = [HasTenantRole]
    queryset = Message.objects.none()
    serializer_class = MessageOutput
    filterset_class = MessageFilter
    filter_backends = [DjangoFilterBackend]
    pagination_class = CreatedAtCursorPagination

    @extend_schema_serializer(component_name="MessageSendInput")
    class Input(serializers.Serializer):
        channel = serializers.ChoiceField(choices=Channel.choices)
        template = serializers.SlugField(
            max_length=100, required=False, default="", help_text="A template name, or give text."
        )
        subject = serializers.CharField(max_length=500, required=False, default="")
        text = serializers.CharField(
            required=False,
            default="",
            help_text="Raw content: the SMS/WhatsApp body or the "
            "plain-text email body (without a template).",
        )
        html = serializers.CharField(required=False, default="", help_text="Raw HTML email body.")
        recipient = serializers.CharField(
            max_length=254, required=False, default="", help_text="Email address or phone number."
        )
        contact = serializers.IntegerField(
            min_value=1, max_value=MAX_ID, required=False, help_text="A contact id, instead."
        )
        variables = serializers.DictField(required=False, default=dict)
        send_at = SendAtField(
            required=False,
            allow_null=True,
            default=None,
            help_text="Send at this time instead of now; without an offset it is read in "
            "time_zone, else the tenant's.",
        )
        time_zone = serializers.CharField(
            required=False, default="", help_text="IANA name, e.g. Europe/Paris."
        )
        whatsapp_template = WhatsAppTemplateInput(
            required=False,
            default=None,
            source="provider_template",
            help_text="WhatsApp through Meta: send this approved template with these variables.",
        )

        def validate_subject(self, subject: str) -> str:
            if "\r" in subject or "\n" in subject:
                raise serializers.ValidationError("A subject is one line: no line breaks.")
            return subject

        def validate_contact(self, contact_id: int) -> Contact:
            tenant = self.context["request"].tenant
            contact = Contact.objects.for_tenant(tenant).filter(pk=contact_id).first()
            if contact is None:
                raise serializers.ValidationError("No such contact in this tenant.")
            return contact

        def validate(self, data: dict[str, Any]) -> dict[str, Any]:
            if not data.get("recipient") and not data.get("contact"):
                raise serializers.ValidationError({"recipient": ["Give a recipient or a contact."]})
            if data["template"] and (data["text"] or data["html"] or data["subject"]):
                raise serializers.ValidationError(
                    {"template": ["Give a template or raw content, not both."]}
                )
            return data

    access_area = "messages"

    def get_queryset(self) -> QuerySet[Message]:
        return list_messages(tenant=tenant_request(self.request).tenant)

    @extend_schema(
        parameters=[TENANT_PARAMETER],
        responses={200: MessageOutput(many=True), **errors(*TENANT_ERRORS)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The tenant's messages, newest first, filtered and paginated by cursor."""
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="messages_send",
        parameters=[TENANT_PARAMETER],
        request=Input,
        responses={
            202: OpenApiResponse(MessageOutput, description="Queued; follow it on its detail."),
            **errors(*TENANT_ERRORS),
        },
        examples=[
            OpenApiExample(
                "A template to a contact",
                value={"channel": "sms", "template": "welcome", "contact": 42},
                request_only=True,
            ),
            OpenApiExample(
                "Raw text to a number",
                value={"channel": "whatsapp", "recipient": "+14155550123", "text": "Hi!"},
                request_only=True,
            ),
            OpenApiExample("Queued", value=MESSAGE_EXAMPLE, response_only=True),
        ],
    )
    def post(self, request: TenantRequest) -> Response:
        """Render a message now and queue its send: unknown templates, missing variables,
        invalid recipients and opted-out contacts answer 400 and nothing is queued."""
        data = self.Input(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        message = send_message(tenant=request.tenant, by=request.user, **data.validated_data)
        return Response(MessageOutput(message).data, status=status.HTTP_202_ACCEPTED)


class MessageCancelView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "messages"

    @extend_schema(
        operation_id="messages_cancel",
        parameters=[TENANT_PARAMETER],
        request=None,
        responses={200: MessageOutput, **errors(*TENANT_ERRORS, 409)},
    )
    def post(self, request: TenantRequest, message_id: str) -> Response:
        """Cancel a waiting send (a scheduled one before it is due); 409 once it went out."""
        message = get_message(tenant=request.tenant, message_id=object_id(message_id))
        return Response(MessageOutput(cancel_message(message, by=request.user)).data)


class MessageDetailView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "messages"

    @extend_schema(
        parameters=[TENANT_PARAMETER],
        responses={200: MessageDetailOutput, **errors(*TENANT_ERRORS)},
    )
    def get(self, request: TenantRequest, message_id: str) -> Response:
        """The message with its status, error, attempts and the job that sends it."""
        message = get_message(tenant=request.tenant, message_id=object_id(message_id))
        return Response(MessageDetailOutput(message).data)


urlpatterns: list[URLPattern | URLResolver] = [
    path("messages/", MessageListView.as_view(), name="message-list"),
    path("messages/<str:message_id>/", MessageDetailView.as_view(), name="message-detail"),
    path("messages/<str:message_id>/cancel/", MessageCancelView.as_view(), name="message-cancel"),
]
