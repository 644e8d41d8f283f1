"""API views of the tenants app: who the caller is and where they act; the tenant's own settings
and members (owners); dispatch controls (operators)."""

from typing import cast

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.models import MAX_WEIGHT, ApiKey, Membership, Role, Tenant
from tenants.permissions import HasTenantRole, IsSuperuser, TenantRequest
from tenants.selectors import TENANT_HEADER, colleagues, memberships_for_user, tenant_members
from tenants.services import (
    SETTINGS_FIELDS,
    add_member,
    keep_an_owner,
    pause_tenant,
    remove_member,
    resume_tenant,
    set_dispatch,
    set_role,
    update_settings,
)

TENANT_PARAMETER = OpenApiParameter(
    TENANT_HEADER,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Slug of the tenant to act in; needed when you belong to several.",
)


class MembershipOutput(serializers.Serializer):
    tenant = serializers.CharField(source="tenant.slug")
    name = serializers.CharField(source="tenant.name")
    role = serializers.CharField()
    is_active = serializers.BooleanField(source="tenant.is_active")


class MeOutput(serializers.Serializer):
    id = serializers.IntegerField(source="user.pk")
    username = serializers.CharField(source="user.username")
    tenant = serializers.CharField(source="tenant.slug")
    role = serializers.CharField()
    memberships = MembershipOutput(many=True)


class MeView(APIView):
    """The caller, the tenant this request acts in with their role there, and their tenants."""

    permission_classes = [HasTenantRole]
    access_area = "tenant"

    @extend_schema(parameters=[TENANT_PARAMETER], responses=MeOutput)
    def get(self, request: TenantRequest) -> Response:
        # A key bound to one tenant shows only that tenant, not the user's others.
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        bound = api_key.tenant if api_key is not None else None
        memberships = memberships_for_user(request.user, tenant=bound)
        me = {
            "user": request.user,
            "tenant": request.tenant,
            "role": request.role,
            "memberships": memberships,
        }
        return Response(MeOutput(me).data)


# --- The tenant's own settings and members (owners change them) --------------------------------


class TenantSettingsOutput(serializers.ModelSerializer):
    contact_created_notify = serializers.ChoiceField(
        choices=Role.choices, allow_blank=True, read_only=True
    )

    class Meta:
        model = Tenant
        fields = [
            "slug",
            "name",
            *SETTINGS_FIELDS,
            "rate_limits",
            "concurrency_limits",
            "weight",
            "paused_queues",
            "backlog_caps",
        ]
        read_only_fields = fields


class TenantSettingsInput(serializers.Serializer):
    queue_defaults = serializers.JSONField(
        required=False,
        help_text='The tenant\'s own timeout and attempts per queue, e.g. {"reports": '
        '{"timeout": 1800, "max_attempts": 2}}.',
    )
    retention_days = serializers.IntegerField(min_value=1, allow_null=True, required=False)
    time_zone = serializers.CharField(max_length=64, required=False)
    default_region = serializers.CharField(max_length=2, required=False)
    contact_created_notify = serializers.ChoiceField(
        choices=Role.choices, allow_blank=True, required=False
    )


class TenantSettingsView(APIView):
    """`tenant/`: the tenant's settings (members read them; owners change what they may —
    its limits, weight, pauses and caps are set by the platform's operators)."""

    permission_classes = [HasTenantRole]
    access_area = "tenant"

    @extend_schema(parameters=[TENANT_PARAMETER], responses=TenantSettingsOutput)
    def get(self, request: TenantRequest) -> Response:
        """The tenant's settings, limits and dispatch as they apply now."""
        return Response(TenantSettingsOutput(request.tenant).data)

    @extend_schema(
        parameters=[TENANT_PARAMETER], request=TenantSettingsInput, responses=TenantSettingsOutput
    )
    def patch(self, request: TenantRequest) -> Response:
        """Change the tenant's queue defaults, retention, time zone, region or notifications."""
        data = TenantSettingsInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        update_settings(request.tenant, by=request.user, **data.validated_data)
        return Response(TenantSettingsOutput(request.tenant).data)


class MemberOutput(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


class NewMemberInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


class RoleInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MemberListView(APIView):
    """`members/`: who belongs to the tenant (members read it; owners add people)."""

    permission_classes = [HasTenantRole]
    access_area = "memberships"

    @extend_schema(parameters=[TENANT_PARAMETER], responses=MemberOutput(many=True))
    def get(self, request: TenantRequest) -> Response:
        """The tenant's members and their roles."""
        return Response(MemberOutput(tenant_members(request.tenant), many=True).data)

    @extend_schema(
        parameters=[TENANT_PARAMETER], request=NewMemberInput, responses={201: MemberOutput}
    )
    def post(self, request: TenantRequest) -> Response:
        """Add a person with a role. As in the admin, an owner adds people who already belong
        to one of the tenants they own; a superuser adds any user."""
        data = NewMemberInput(data=request.data)
        data.is_valid(raise_exception=True)
        username = data.validated_data["username"]
        user = colleagues(cast(User, request.user)).filter(username=username).first()
        if user is None:
            raise ValidationError(
                {"username": [f"No user {username!r} among the members of your tenants."]}
            )
        membership = add_member(request.tenant, user=user, role=data.validated_data["role"])
        return Response(MemberOutput(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "memberships"

    def _membership(self, request: TenantRequest, pk: int) -> Membership:
        membership = tenant_members(request.tenant).filter(pk=pk).first()
        if membership is None:
            raise NotFound(f"No member {pk} in this tenant.")
        return membership

    @extend_schema(parameters=[TENANT_PARAMETER], responses=MemberOutput)
    def get(self, request: TenantRequest, pk: int) -> Response:
        return Response(MemberOutput(self._membership(request, pk)).data)

    @extend_schema(parameters=[TENANT_PARAMETER], request=RoleInput, responses=MemberOutput)
    def patch(self, request: TenantRequest, pk: int) -> Response:
        """Change a member's role; the last owner stays an owner."""
        membership = self._membership(request, pk)
        data = RoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        keep_an_owner(membership, role=data.validated_data["role"])
        set_role(membership, role=data.validated_data["role"])
        return Response(MemberOutput(membership).data)

    @extend_schema(parameters=[TENANT_PARAMETER], request=None, responses={204: None})
    def delete(self, request: TenantRequest, pk: int) -> Response:
        """End a membership (the person keeps their account); the last owner stays."""
        membership = self._membership(request, pk)
        keep_an_owner(membership, role=None)
        remove_member(membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Dispatch controls (platform operators) ----------------------------------------------------


class DispatchSerializer(serializers.Serializer):
    """How a tenant's jobs are dispatched; every field optional on PATCH."""

    tenant = serializers.CharField(source="slug", read_only=True)
    weight = serializers.IntegerField(
        min_value=1,
        max_value=MAX_WEIGHT,
        required=False,
        help_text="Jobs this tenant gets in a row in each queue's rotation across tenants.",
    )
    paused_queues = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text='Queues whose jobs of this tenant wait without running; ["*"] is all.',
    )
    backlog_caps = serializers.DictField(
        child=serializers.IntegerField(min_value=0),
        required=False,
        help_text="Most jobs that may wait per queue; enqueues past it answer 429.",
    )
    rate_limits = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text='Overrides of the tenant\'s rate limits, e.g. {"email": "20/s"}.',
    )
    concurrency_limits = serializers.DictField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        help_text='Overrides of how many jobs may run at once, e.g. {"imports": 3}.',
    )


def _tenant(slug: str) -> Tenant:
    try:
        return Tenant.objects.get(slug=slug)
    except Tenant.DoesNotExist as missing:
        raise NotFound(f"There is no tenant {slug!r}.") from missing


class TenantDispatchView(APIView):
    permission_classes = [IsSuperuser]

    @extend_schema(responses=DispatchSerializer)
    def get(self, request: Request, slug: str) -> Response:
        """A tenant's weight, paused queues, backlog caps and limit overrides."""
        return Response(DispatchSerializer(_tenant(slug)).data)

    @extend_schema(request=DispatchSerializer, responses=DispatchSerializer)
    def patch(self, request: Request, slug: str) -> Response:
        """Change any of them; applied at the workers' next take, written to the admin log."""
        tenant = _tenant(slug)
        data = DispatchSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        set_dispatch(tenant, by=request.user, **data.validated_data)
        return Response(DispatchSerializer(tenant).data)


class PauseInput(serializers.Serializer):
    queue = serializers.CharField(
        default="*", help_text='One queue, or "*" (the default) for every queue.'
    )


class TenantPauseView(APIView):
    permission_classes = [IsSuperuser]

    @extend_schema(request=PauseInput, responses=DispatchSerializer)
    def post(self, request: Request, slug: str) -> Response:
        """Hold the tenant's jobs on one queue or all: they wait, other tenants' run."""
        tenant = _tenant(slug)
        data = PauseInput(data=request.data)
        data.is_valid(raise_exception=True)
        pause_tenant(tenant, queue=data.validated_data["queue"], by=request.user)
        return Response(DispatchSerializer(tenant).data)


class TenantResumeView(APIView):
    permission_classes = [IsSuperuser]

    @extend_schema(request=PauseInput, responses=DispatchSerializer)
    def post(self, request: Request, slug: str) -> Response:
        """Let the tenant's jobs on one queue (or, with "*", every queue) run again."""
        tenant = _tenant(slug)
        data = PauseInput(data=request.data)
        data.is_valid(raise_exception=True)
        resume_tenant(tenant, queue=data.validated_data["queue"], by=request.user)
        return Response(DispatchSerializer(tenant).data)
