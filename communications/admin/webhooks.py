"""Admin: webhook endpoints (secret shown once, rotate, send a test) and deliveries (replay).

Tenant admins and owners see and manage their tenants' webhooks; every change goes through
communications.services.webhooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from rest_framework import serializers

from communications.models import (
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from communications.models.webhooks import ALL_EVENTS
from communications.services.webhooks import (
    EDITABLE,
    check_endpoint_url,
    check_event_types,
    create_endpoint,
    delete_endpoint,
    replay_deliveries,
    rotate_secret,
    send_test_event,
    update_endpoint,
)
from jobs.admin.display import job_link, pretty_json, short_time, status_badge
from tenants.admin import TenantScopedAdminMixin

if TYPE_CHECKING:
    _AttemptInline = admin.TabularInline[WebhookAttempt, WebhookDelivery]
else:
    _AttemptInline = admin.TabularInline

EVERYWHERE = [ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM]
EVENT_CHOICES = [(ALL_EVENTS, "Every event (*)")] + [
    (value, label) for value, label in EventType.choices if value != EventType.WEBHOOK_TEST
]


class AdminsOnlyMixin(TenantScopedAdminMixin):
    """Webhooks are for tenant admins and owners: other members do not see them."""

    access_area = "webhooks"


# --- Endpoints ----------------------------------------------------------------------------------


class WebhookEndpointForm(forms.ModelForm):
    """Refuses what the services refuse (unsafe URLs, unknown event types) at its field."""

    event_types = forms.MultipleChoiceField(
        choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("tenant", *EDITABLE)

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if "url" in self.changed_data:
            try:
                check_endpoint_url(url)
            except serializers.ValidationError as error:
                raise forms.ValidationError(_messages(error, "url")) from None
        return url

    def clean_event_types(self) -> list[str]:
        try:
            return check_event_types(self.cleaned_data["event_types"])
        except serializers.ValidationError as error:
            raise forms.ValidationError(_messages(error, "event_types")) from None


def _messages(error: serializers.ValidationError, field: str) -> list[str]:
    detail = error.detail
    found = detail.get(field, detail) if isinstance(detail, dict) else detail
    return [str(message) for message in (found if isinstance(found, list) else [found])]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AdminsOnlyMixin):
    form = WebhookEndpointForm
    list_display = (
        "url",
        "tenant",
        "events",
        "is_active",
        "consecutive_failures",
        "last_success",
        "deliveries_link",
    )
    list_filter = ("is_active", "tenant")
    list_select_related = ("tenant",)
    search_fields = ("url", "description")
    ordering = ("-created_at",)
    actions = ["rotate_secret_selected", "send_test_selected"]
    health = (
        "consecutive_failures",
        "dead_deliveries",
        "last_success_at",
        "last_failure_at",
        "disabled_at",
        "disabled_reason",
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[tuple[Any, Any]]:
        fieldsets: list[tuple[Any, Any]] = [
            (None, {"fields": ("tenant", "url", "description", "event_types", "is_active")})
        ]
        if obj is None:
            fieldsets += [("Signing", {"fields": ("legacy_signature",)})]
        else:
            fieldsets += [
                (
                    "Signing",
                    {"fields": ("legacy_signature", "secret_hint", "previous_secret_expires_at")},
                ),
                ("Health", {"fields": (*self.health, "deliveries_link")}),
            ]
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return (
            "tenant",
            "secret_hint",
            "previous_secret_expires_at",
            *self.health,
            "deliveries_link",
        )

    @admin.display(description="events")
    def events(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.event_types)

    @admin.display(description="last success", ordering="last_success_at")
    def last_success(self, endpoint: WebhookEndpoint) -> SafeString | str:
        return short_time(endpoint.last_success_at)

    @admin.display(description="deliveries")
    def deliveries_link(self, endpoint: WebhookEndpoint) -> SafeString:
        url = reverse("admin:communications_webhookdelivery_changelist")
        return format_html('<a href="{}?endpoint__id__exact={}">Deliveries</a>', url, endpoint.pk)

    # --- Saving and deleting through the services ---------------------------------------------

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool
    ) -> None:
        self.check_tenant(request, obj)
        fields = {name: form.cleaned_data[name] for name in EDITABLE if name in form.cleaned_data}
        if change:
            update_endpoint(obj, by=request.user, **fields)
            return
        saved = create_endpoint(tenant=obj.tenant, by=request.user, **fields)
        obj.pk, obj.secret = saved.pk, saved.secret
        messages.warning(
            request,
            f"Signing secret of {saved.url}: {saved.secret} — shown only now; store it with "
            "the receiver.",
        )

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        delete_endpoint(obj, by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in self.editable_queryset(request, queryset):
            delete_endpoint(endpoint, by=request.user)

    # --- Actions --------------------------------------------------------------------------------

    @admin.action(description="Rotate signing secret", permissions=["change"], location=EVERYWHERE)
    def rotate_secret_selected(
        self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]
    ) -> None:
        for endpoint in self.editable_queryset(request, queryset):
            rotated = rotate_secret(endpoint, by=request.user)
            until = rotated.previous_secret_expires_at
            old = f"the old one also signs until {until:%Y-%m-%d %H:%M} UTC" if until else ""
            messages.warning(
                request,
                f"New signing secret of {rotated.url}: {rotated.secret} — shown only now; {old}.",
            )
            self.log_change(request, endpoint, "Rotated the signing secret.")

    @admin.action(description="Send a test event", permissions=["change"], location=EVERYWHERE)
    def send_test_selected(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        endpoints = list(self.editable_queryset(request, queryset).select_related("tenant"))
        for endpoint in endpoints:
            send_test_event(endpoint, by=request.user)
        self.message_user(
            request, f"Test event sent to {len(endpoints)} endpoint(s): see their deliveries."
        )


# --- Deliveries ---------------------------------------------------------------------------------


class WebhookAttemptInline(_AttemptInline):
    model = WebhookAttempt
    verbose_name_plural = "attempts"
    fields = (
        "number",
        "started_at",
        "duration_ms",
        "outcome",
        "response_code",
        "response_excerpt",
        "error",
        "retry_in",
        "address",
    )
    readonly_fields = fields
    extra = max_num = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True  # the delivery page itself checked the tenant

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AdminsOnlyMixin):
    """Deliveries are records: read-only, replayed by an action."""

    class Media:
        css = {"all": ["jobs/admin.css"]}

    list_display = (
        "event_type",
        "endpoint",
        "tenant",
        "status_badge",
        "attempts",
        "last_response_code",
        "next_attempt",
        "created",
    )
    list_filter = ("status", "event_type", "tenant", ("endpoint", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("tenant", "endpoint")
    search_fields = ("=event_id", "=id")
    ordering = ("-created_at",)
    actions = ["replay_selected"]
    inlines = [WebhookAttemptInline]
    fields = (
        "id",
        "tenant",
        "endpoint",
        "event_id",
        "event_type",
        "status_badge",
        "attempts",
        "next_attempt_at",
        "last_response_code",
        "last_response_excerpt",
        "last_error",
        "last_duration_ms",
        "job_link",
        "created_at",
        "delivered_at",
        "payload_json",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    @admin.display(description="status", ordering="status")
    def status_badge(self, delivery: WebhookDelivery) -> SafeString:
        return status_badge(delivery.status)

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, delivery: WebhookDelivery) -> SafeString | str:
        return short_time(delivery.next_attempt_at)

    @admin.display(description="created", ordering="created_at")
    def created(self, delivery: WebhookDelivery) -> SafeString | str:
        return short_time(delivery.created_at)

    @admin.display(description="job")
    def job_link(self, delivery: WebhookDelivery) -> SafeString | str:
        return job_link(delivery.job_id) if delivery.job_id else "–"

    @admin.display(description="body sent")
    def payload_json(self, delivery: WebhookDelivery) -> SafeString:
        return pretty_json(delivery.payload)

    @admin.action(description="Replay", permissions=["replay"], location=EVERYWHERE)
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        counts = replay_deliveries(self.editable_queryset(request, queryset), by=request.user)
        self.message_user(request, f"Replayed {counts['replayed']} delivery(ies).")
        if counts["skipped"]:
            self.message_user(
                request,
                f"{counts['skipped']} not replayed: still being sent, or their endpoint is "
                "disabled.",
                level=messages.WARNING,
            )
