"""API views: campaigns — create (and start), list, detail with live totals, start, cancel."""

from typing import Any

from django.db.models import QuerySet
from django.urls import URLPattern, URLResolver, path
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from communications.api.messages import MAX_ID, SendAtField, object_id
from communications.models import Campaign, Channel
from communications.selectors.campaigns import campaigns_totals, get_campaign, list_campaigns
from communications.services.campaigns import cancel_campaign, create_campaign, start_campaign
from jobs.api.common import RedactedObjectField, errors, tenant_request
from tenants.api import TENANT_PARAMETER
from tenants.permissions import HasTenantRole, TenantRequest

TENANT_ERRORS = (400, 401, 403, 404, 429)
MAX_CONTACT_IDS = 100_000


class TotalsOutput(serializers.Serializer):
    recipients = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Opted out or without an address.")
    canceled = serializers.IntegerField(help_text="Not sent because the campaign was canceled.")
    pending = serializers.IntegerField(help_text="Still to send.")
    delivered = serializers.IntegerField(help_text="Receipts: delivered (read ones included).")
    read = serializers.IntegerField(help_text="Receipts: read or opened.")
    bounced = serializers.IntegerField(help_text="Receipts: bounced (the contact opted out).")
    complained = serializers.IntegerField(help_text="Receipts: marked as spam (opted out).")


class CampaignOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", allow_null=True)
    variables = RedactedObjectField(help_text="Values under secret-looking keys are masked.")
    totals = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "channel",
            "template",
            "variables",
            "contact_ids",
            "tags",
            "status",
            "totals",
            "created_by",
            "job",
            "batch",
            "created_at",
            "send_at",
            "started_at",
            "finished_at",
            "cancel_requested_at",
        ]
        read_only_fields = fields

    @staticmethod
    def with_totals(campaigns: list[Campaign]) -> dict[str, Any]:
        """Serializer context holding every campaign's totals, counted in one query."""
        return {"totals": campaigns_totals(campaigns)}

    @extend_schema_field(TotalsOutput)
    def get_totals(self, campaign: Campaign) -> dict[str, int]:
        totals = self.context.get("totals") or campaigns_totals([campaign])
        return totals[campaign.pk]


CAMPAIGN_EXAMPLE: dict[str, Any] = {
    "id": 7,
    "name": "November newsletter",
    "channel": "whatsapp",
    "template": "welcome",
    "variables": {"action_url": "https://acme.example.com/start"},
    "contact_ids": [],
    "tags": ["newsletter"],
    "status": "running",
    "totals": {
        "recipients": 2000,
        "sent": 1200,
        "failed": 3,
        "skipped": 40,
        "canceled": 0,
        "pending": 757,
    },
    "created_by": "agnes",
    "job": "6f1c2a4e-8d0b-4c55-9a3e-1f2b3c4d5e6f",
    "batch": "0b8f9c1e-2d3a-4b5c-8d7e-6f5a4b3c2d1e",
    "created_at": "2026-11-22T16:30:00.123456Z",
    "started_at": "2026-11-22T16:30:00.123456Z",
    "finished_at": None,
    "cancel_requested_at": None,
}


class CampaignListView(generics.ListAPIView):
    """`campaigns/`: GET lists them (viewer and up), POST creates and starts one (agent up)."""

    permission_classes = [HasTenantRole]
    queryset = Campaign.objects.none()
    serializer_class = CampaignOutput

    @extend_schema_serializer(component_name="CampaignCreateInput")
    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        channel = serializers.ChoiceField(choices=Channel.choices)
        template = serializers.SlugField(max_length=100)
        contact_ids = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
            max_length=MAX_CONTACT_IDS,
            required=False,
            default=list,
            help_text="The audience: these contacts…",
        )
        tags = serializers.ListField(
            child=serializers.CharField(max_length=50),
            max_length=100,
            required=False,
            default=list,
            help_text="…or every contact with any of these tags.",
        )
        variables = serializers.DictField(
            required=False, default=dict, help_text="Variables every recipient's message gets."
        )
        start = serializers.BooleanField(
            default=True, help_text="false: save a draft, started later with start/."
        )
        send_at = SendAtField(
            required=False,
            allow_null=True,
            default=None,
            help_text="Start at this time instead of now (scheduled); without an offset it is "
            "read in time_zone, else the tenant's.",
        )
        time_zone = serializers.CharField(
            required=False, default="", help_text="IANA name, e.g. Europe/Paris."
        )

    access_area = "campaigns"

    def get_queryset(self) -> QuerySet[Campaign]:
        params = self.request.query_params
        return list_campaigns(
            tenant=tenant_request(self.request).tenant,
            status=params.get("status", ""),
            channel=params.get("channel", ""),
        )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        campaigns = list(page or [])
        context = CampaignOutput.with_totals(campaigns)
        return self.get_paginated_response(
            CampaignOutput(campaigns, many=True, context=context).data
        )

    @extend_schema(
        parameters=[TENANT_PARAMETER],
        responses={200: CampaignOutput(many=True), **errors(*TENANT_ERRORS)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The tenant's campaigns, newest first, with their totals; filter by status, channel."""
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="campaigns_create",
        parameters=[TENANT_PARAMETER],
        request=Input,
        responses={
            202: OpenApiResponse(CampaignOutput, description="Started: follow its totals."),
            201: OpenApiResponse(CampaignOutput, description="Saved as a draft (start=false)."),
            **errors(*TENANT_ERRORS),
        },
        examples=[
            OpenApiExample(
                "WhatsApp to a tag",
                value={
                    "name": "November newsletter",
                    "channel": "whatsapp",
                    "template": "welcome",
                    "tags": ["newsletter"],
                },
                request_only=True,
            ),
            OpenApiExample("Started", value=CAMPAIGN_EXAMPLE, response_only=True),
        ],
    )
    def post(self, request: TenantRequest) -> Response:
        """Create a campaign and start it: its recipients are snapshotted and sent in batches."""
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = create_campaign(tenant=request.tenant, by=request.user, **data.validated_data)
        started = campaign.status != Campaign.Status.DRAFT
        return Response(
            CampaignOutput(campaign).data,
            status=status.HTTP_202_ACCEPTED if started else status.HTTP_201_CREATED,
        )


class CampaignDetailView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "campaigns"

    @extend_schema(
        parameters=[TENANT_PARAMETER],
        responses={200: CampaignOutput, **errors(*TENANT_ERRORS)},
        examples=[OpenApiExample("Running", value=CAMPAIGN_EXAMPLE, response_only=True)],
    )
    def get(self, request: TenantRequest, campaign_id: str) -> Response:
        """The campaign with its live totals."""
        campaign = get_campaign(tenant=request.tenant, campaign_id=object_id(campaign_id))
        return Response(CampaignOutput(campaign).data)


class CampaignStartView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "campaigns"

    @extend_schema(
        parameters=[TENANT_PARAMETER],
        request=None,
        responses={202: CampaignOutput, **errors(*TENANT_ERRORS, 409)},
    )
    def post(self, request: TenantRequest, campaign_id: str) -> Response:
        """Start a draft campaign."""
        campaign = get_campaign(tenant=request.tenant, campaign_id=object_id(campaign_id))
        campaign = start_campaign(campaign, by=request.user)
        return Response(CampaignOutput(campaign).data, status=status.HTTP_202_ACCEPTED)


class CampaignCancelView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "campaigns"

    @extend_schema(
        parameters=[TENANT_PARAMETER],
        request=None,
        responses={200: CampaignOutput, **errors(*TENANT_ERRORS, 409)},
    )
    def post(self, request: TenantRequest, campaign_id: str) -> Response:
        """Stop the campaign between recipients; the totals say how many were sent."""
        campaign = get_campaign(tenant=request.tenant, campaign_id=object_id(campaign_id))
        campaign = cancel_campaign(campaign, by=request.user)
        return Response(CampaignOutput(campaign).data)


urlpatterns: list[URLPattern | URLResolver] = [
    path("campaigns/", CampaignListView.as_view(), name="campaign-list"),
    path("campaigns/<str:campaign_id>/", CampaignDetailView.as_view(), name="campaign-detail"),
    path("campaigns/<str:campaign_id>/start/", CampaignStartView.as_view(), name="campaign-start"),
    path(
        "campaigns/<str:campaign_id>/cancel/",
        CampaignCancelView.as_view(),
        name="campaign-cancel",
    ),
]
