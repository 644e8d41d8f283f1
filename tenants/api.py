"""API views of the tenants app: who the caller is and where they act."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.models import ApiKey
from tenants.permissions import HasTenantRole, TenantRequest
from tenants.selectors import TENANT_HEADER, memberships_for_user

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
