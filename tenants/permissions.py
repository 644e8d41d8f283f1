"""DRF permission classes: the request's tenant and role, and superuser-only operations."""

from typing import cast

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from tenants import access
from tenants.models import ApiKey, Role, Tenant
from tenants.selectors import TENANT_HEADER, resolve_tenant


class TenantRequest(Request):
    """A request that passed `HasTenantRole`: annotate a view's `request` with it."""

    tenant: Tenant
    role: str


class HasTenantRole(BasePermission):
    """Choose the request's tenant, set `request.tenant` and `request.role`, check the role.

    The tenant is named by the X-Tenant header or, for a key bound to a tenant, by the key.
    The lowest role allowed comes from the role matrix (`tenants.access`): the view's
    `access_area`, read for safe methods and written otherwise (`access_write` overrides);
    a view without an area names `required_role` (default viewer). Superusers count as owners
    everywhere.
    """

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not request.user.is_authenticated:
            return False  # DRF answers 401 when no credentials were sent
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        slug = request.headers.get(TENANT_HEADER, "").strip()
        tenant, role = resolve_tenant(user=request.user, api_key=api_key, slug=slug)
        tenant_request = cast(TenantRequest, request)
        tenant_request.tenant, tenant_request.role = tenant, role
        required = required_role(request, view)
        if Role.rank(role) < Role.rank(required):
            raise PermissionDenied(
                f"This needs the {required} role or higher in {tenant.slug}; yours is {role}."
            )
        return True


def required_role(request: Request, view: APIView) -> str:
    """The lowest role `view` allows for `request`'s method."""
    area = getattr(view, "access_area", None)
    if area is None:
        return str(getattr(view, "required_role", Role.VIEWER))
    write = getattr(view, "access_write", request.method not in SAFE_METHODS)
    return access.required_role(area, write=write)


class IsSuperuser(BasePermission):
    """Only platform operators: queues are shared by every tenant."""

    message = "Only a platform operator (superuser) may do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user.is_authenticated and request.user.is_superuser)
