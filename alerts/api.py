"""API views of alerts: rules (superusers), incidents (operators; tenant admins their own),
acknowledging one, and a member's opt-in to the tenant's daily digest."""

from typing import Any, cast

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.models import AlertRecipient, AlertRule, Condition, Incident
from alerts.selectors import list_incidents, list_rules
from alerts.services.digests import subscribe, unsubscribe
from alerts.services.incidents import acknowledge_incident
from alerts.services.rules import EDITABLE, create_rule, delete_rule, update_rule
from jobs.api.common import TENANT_ERRORS, errors
from tenants.api import TENANT_PARAMETER
from tenants.models import Tenant
from tenants.permissions import HasTenantRole, IsSuperuser, TenantRequest

TAGS = ["alerts"]
PAGE = OpenApiParameter("page", int)
WEEK_MINUTES = 7 * 24 * 60
OPERATOR_ERRORS = (400, 401, 403, 404, 409, 429)


class RecipientField(serializers.ModelSerializer):
    class Meta:
        model = AlertRecipient
        fields = ("level", "channel", "user", "url")
        extra_kwargs = {"user": {"required": False}, "url": {"required": False}}


class RuleOutput(serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.slug", read_only=True, allow_null=True)
    recipients = RecipientField(many=True, read_only=True)

    class Meta:
        model = AlertRule
        fields = ("id", "tenant", *EDITABLE, "builtin", "recipients", "created_at", "updated_at")
        read_only_fields = fields


class TenantSlugField(serializers.SlugRelatedField[Tenant]):
    """A tenant by its slug; a slug holding NUL (PostgreSQL cannot compare it) names none."""

    def to_internal_value(self, data: Any) -> Tenant:
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data)
        return super().to_internal_value(data)


class RuleInput(serializers.Serializer):
    tenant = TenantSlugField(
        slug_field="slug",
        queryset=Tenant.objects.all(),
        required=False,
        allow_null=True,
        help_text="Slug of the tenant whose jobs the rule watches; null: platform-wide.",
    )
    name = serializers.CharField(max_length=200)
    condition = serializers.ChoiceField(choices=Condition.choices)
    threshold = serializers.FloatField(min_value=0, max_value=1e12, default=0)
    window_minutes = serializers.IntegerField(min_value=1, max_value=WEEK_MINUTES, default=15)
    queue = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")
    kind = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    component = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    min_jobs = serializers.IntegerField(min_value=0, max_value=1_000_000, default=5)
    notify_admins = serializers.BooleanField(default=True)
    publish_webhooks = serializers.BooleanField(default=True)
    escalate_after_minutes = serializers.IntegerField(
        min_value=1, max_value=WEEK_MINUTES, required=False, allow_null=True
    )
    cooldown_minutes = serializers.IntegerField(min_value=0, max_value=WEEK_MINUTES, default=10)
    enabled = serializers.BooleanField(default=True)
    silenced_until = serializers.DateTimeField(required=False, allow_null=True)
    recipients = RecipientField(many=True, required=False)


class IncidentOutput(serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.slug", read_only=True, allow_null=True)
    rule = serializers.IntegerField(source="rule_id", read_only=True)
    rule_name = serializers.CharField(source="rule.name", read_only=True)

    class Meta:
        model = Incident
        fields = (
            "id",
            "rule",
            "rule_name",
            "tenant",
            "status",
            "summary",
            "figures",
            "level",
            "opened_at",
            "last_seen_at",
            "escalated_at",
            "acknowledged_at",
            "silenced_until",
            "resolved_at",
        )
        read_only_fields = fields


class IncidentQuery(serializers.Serializer):
    status = serializers.ChoiceField(choices=Incident.Status.choices, required=False, default="")


class RulePageOutput(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = RuleOutput(many=True)


class IncidentPageOutput(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = IncidentOutput(many=True)


class DigestOutput(serializers.Serializer):
    subscribed = serializers.BooleanField()


def _recipients(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    given = data.pop("recipients", None)
    if given is None:
        return None
    return [{**recipient, "url": recipient.get("url", "")} for recipient in given]


# --- Rules (superusers) -------------------------------------------------------------------------


class AlertRuleListView(APIView):
    permission_classes = [IsSuperuser]

    @extend_schema(
        operation_id="alerts_rules_list",
        tags=TAGS,
        parameters=[PAGE],
        responses={200: RulePageOutput, **errors(401, 403, 404, 429)},
    )
    def get(self, request: Request) -> Response:
        """Every alert rule, platform-wide and tenants', with its recipients."""
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(list_rules().order_by("pk"), request, view=self)
        return paginator.get_paginated_response(RuleOutput(page, many=True).data)

    @extend_schema(
        tags=TAGS, request=RuleInput, responses={201: RuleOutput, **errors(*OPERATOR_ERRORS)}
    )
    def post(self, request: Request) -> Response:
        """Create a rule (a tenant's: only its own jobs' conditions and members as recipients)."""
        data = RuleInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        recipients = _recipients(fields)
        tenant = fields.pop("tenant", None)
        rule = create_rule(tenant=tenant, recipients=recipients, by=request.user, **fields)
        return Response(RuleOutput(rule).data, status=status.HTTP_201_CREATED)


class AlertRuleDetailView(APIView):
    permission_classes = [IsSuperuser]

    @extend_schema(tags=TAGS, responses={200: RuleOutput, **errors(401, 403, 404, 429)})
    def get(self, request: Request, pk: int) -> Response:
        return Response(RuleOutput(get_object_or_404(list_rules(), pk=pk)).data)

    @extend_schema(
        tags=TAGS,
        request=RuleInput(partial=True),
        responses={200: RuleOutput, **errors(*OPERATOR_ERRORS)},
    )
    def patch(self, request: Request, pk: int) -> Response:
        """Change a rule; `recipients`, when given, replaces them all. The tenant stays."""
        rule = get_object_or_404(list_rules(), pk=pk)
        data = RuleInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields.pop("tenant", None)
        recipients = _recipients(fields)
        rule = update_rule(rule, recipients=recipients, **fields)
        return Response(RuleOutput(get_object_or_404(list_rules(), pk=rule.pk)).data)

    @extend_schema(tags=TAGS, responses={204: None, **errors(401, 403, 404, 409, 429)})
    def delete(self, request: Request, pk: int) -> Response:
        """Delete a rule and its incidents; a built-in rule answers 409 (disable it instead)."""
        delete_rule(get_object_or_404(list_rules(), pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Incidents (operators, and tenant admins for their own) ------------------------------------


def _visible_incidents(request: Request) -> QuerySet[Incident]:
    if request.user.is_superuser:
        return list_incidents()
    return list_incidents(tenant=cast(TenantRequest, request).tenant)


class IncidentListView(APIView):
    permission_classes = [IsSuperuser | HasTenantRole]
    access_area = "alerts"

    @extend_schema(
        tags=TAGS,
        operation_id="alerts_incidents_list",
        parameters=[TENANT_PARAMETER, IncidentQuery, PAGE],
        responses={200: IncidentPageOutput, **errors(*TENANT_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        """Incidents, newest first: every one for operators, a tenant's own rules' for its
        admins (never a platform rule's)."""
        query = IncidentQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        incidents = _visible_incidents(request)
        if query.validated_data["status"]:
            incidents = incidents.filter(status=query.validated_data["status"])
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(incidents, request, view=self)
        return paginator.get_paginated_response(IncidentOutput(page, many=True).data)


class IncidentAcknowledgeView(APIView):
    permission_classes = [IsSuperuser | HasTenantRole]
    access_area = "alerts"

    @extend_schema(
        tags=TAGS,
        request=None,
        parameters=[TENANT_PARAMETER],
        responses={200: IncidentOutput, **errors(*TENANT_ERRORS)},
    )
    def post(self, request: Request, pk: int) -> Response:
        """Someone is on it: the incident escalates no further. Again: no change."""
        incident = get_object_or_404(_visible_incidents(request), pk=pk)
        return Response(IncidentOutput(acknowledge_incident(incident, by=request.user)).data)


# --- The daily digest (any member, for themselves) ----------------------------------------------


class DigestSubscriptionView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "digests"

    @extend_schema(
        tags=TAGS,
        request=None,
        parameters=[TENANT_PARAMETER],
        responses={200: DigestOutput, **errors(*TENANT_ERRORS)},
    )
    def put(self, request: TenantRequest) -> Response:
        """Get the tenant's daily digest email: jobs run, failures by kind, dead letters."""
        subscribe(tenant=request.tenant, user=cast(User, request.user))
        return Response(DigestOutput({"subscribed": True}).data)

    @extend_schema(
        tags=TAGS,
        request=None,
        parameters=[TENANT_PARAMETER],
        responses={200: DigestOutput, **errors(*TENANT_ERRORS)},
    )
    def delete(self, request: TenantRequest) -> Response:
        """Stop the daily digest."""
        unsubscribe(tenant=request.tenant, user=cast(User, request.user))
        return Response(DigestOutput({"subscribed": False}).data)


urlpatterns: list[URLPattern] = [
    path("alerts/rules/", AlertRuleListView.as_view(), name="alert-rule-list"),
    path("alerts/rules/<int:pk>/", AlertRuleDetailView.as_view(), name="alert-rule-detail"),
    path("alerts/incidents/", IncidentListView.as_view(), name="incident-list"),
    path(
        "alerts/incidents/<int:pk>/acknowledge/",
        IncidentAcknowledgeView.as_view(),
        name="incident-acknowledge",
    ),
    path("alerts/digest/", DigestSubscriptionView.as_view(), name="alert-digest"),
]
