"""Admin: when the demo tenant got its sample data, and what (read-only; operators only)."""

from django.contrib import admin
from django.http import HttpRequest

from demo.models import DemoSeed


@admin.register(DemoSeed)
class DemoSeedAdmin(admin.ModelAdmin):
    list_display = ("tenant", "created_at", "summary")
    readonly_fields = ("tenant", "created_at", "summary")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
