"""Once-markers in the admin: which side effects `ctx.once` recorded, per tenant.

Read-only. A tenant's admins may delete a marker, which lets the effect it guards happen once
more: for an operator repairing data by hand, never for routine use.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from jobs.models import OnceMarker
from tenants.admin import TenantScopedAdminMixin


@admin.register(OnceMarker)
class OnceMarkerAdmin(TenantScopedAdminMixin):
    access_area = "once_markers"
    list_display = ("name", "tenant", "job_id", "created_at")
    list_filter = ("tenant",)
    search_fields = ("name", "=job_id")
    list_select_related = ("tenant",)
    readonly_fields = ("tenant", "name", "job_id", "created_at")
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return request.user.is_superuser or bool(self.editable_tenant_ids(request))
        return self.can_edit_in(request, obj.tenant_id)
