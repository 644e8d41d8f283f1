"""Admin: messages, read-only; each shows its status, error, attempts and the job that sent it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from communications.admin.senders import DeliveryEventInline
from communications.models import Message
from tenants.admin import TenantScopedAdminMixin


@admin.register(Message)
class MessageAdmin(TenantScopedAdminMixin):
    access_area = "messages"
    list_display = (
        "id",
        "recipient",
        "channel",
        "status",
        "delivery_status",
        "template",
        "campaign",
        "attempts",
        "created_at",
        "sent_at",
    )
    list_filter = ("status", "delivery_status", "channel", "tenant")
    list_select_related = ("campaign",)
    search_fields = ("recipient", "provider_message_id", "template")
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = (
        "tenant",
        "channel",
        "recipient",
        "contact",
        "template",
        "subject",
        "text",
        "html",
        "status",
        "error",
        "send_at",
        "delivery_status",
        "delivery_updated_at",
        "sender",
        "provider_message_id",
        "attempts",
        "job",
        "campaign",
        "created_by",
        "created_at",
        "sent_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = [DeliveryEventInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
