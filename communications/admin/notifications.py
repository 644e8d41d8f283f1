"""Admin: notifications, read-only (they are written by notify_user and marked read by users)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from communications.models import Notification
from tenants.admin import TenantScopedAdminMixin


@admin.register(Notification)
class NotificationAdmin(TenantScopedAdminMixin):
    """Each member reads their own notifications; superusers read everyone's."""

    access_area = "notifications"
    list_display = ("title", "user", "tenant", "is_read", "created_at")
    list_filter = ("tenant", ("read_at", admin.EmptyFieldListFilter))
    list_select_related = ("user", "tenant")
    search_fields = ("title", "body", "user__username", "user__email")
    ordering = ("-created_at", "-id")
    fields = ("tenant", "user", "title", "body", "link", "read_at", "created_at")
    readonly_fields = fields
    show_full_result_count = False

    @admin.display(description="Read", boolean=True)
    def is_read(self, notification: Notification) -> bool:
        return notification.read_at is not None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
