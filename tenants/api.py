"""API views of the tenants app: who the caller is and where they act."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.models import MAX_WEIGHT, ApiKey, Tenant
from tenants.permissions import HasTenantRole, IsSuperuser, TenantRequest
from tenants.selectors import TENANT_HEADER, memberships_for_user
from tenants.services import pause_tenant, resume_tenant, set_dispatch

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
