"""Admin: a tenant's senders, for its admins and owners. Credentials are write-only fields that
are never filled back in; "Send a test to" sends one through the sender once it is saved."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from communications.admin.webhooks import AdminsOnlyMixin
from communications.models import DeliveryEvent, Sender
from communications.selectors.senders import stored_secret_names
from communications.services.senders import (
    all_secret_names,
    check_sender,
    receipt_url,
    save_sender,
    send_test,
)


class SenderForm(forms.ModelForm):
    """One password field per credential (never rendered back); checked by the service."""

    test_to = forms.CharField(
        required=False,
        label="Send a test to",
        help_text="An address or number: a test goes through this sender after saving.",
    )

    class Meta:
        model = Sender
        fields = [
            "tenant",
            "channel",
            "provider",
            "from_name",
            "from_address",
            "reply_to",
            "settings",
            "is_active",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = stored_secret_names(self.instance) if self.instance.pk else []
        for name in all_secret_names():
            note = "Stored; leave empty to keep it." if name in stored else ""
            self.fields[f"secret_{name}"] = forms.CharField(
                required=False,
                strip=False,
                label=name.replace("_", " ").capitalize(),
                widget=forms.PasswordInput(render_value=False),
                help_text=note,
            )

    def credentials(self) -> dict[str, str]:
        return {
            name: self.cleaned_data[f"secret_{name}"]
            for name in all_secret_names()
            if self.cleaned_data.get(f"secret_{name}")
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        tenant = data.get("tenant")
        if tenant is None or self.errors:
            return data
        stored = (
            {n: "stored" for n in stored_secret_names(self.instance)} if self.instance.pk else {}
        )
        try:
            check_sender(
                tenant,
                channel=data["channel"],
                provider=data["provider"],
                from_address=data["from_address"],
                reply_to=data.get("reply_to", ""),
                options=data.get("settings") or {},
                credentials={**stored, **self.credentials()},
            )
        except ValidationError as error:
            for field, found in error.message_dict.items():
                target = field if field in self.fields else NON_FIELD_ERRORS
                for text in found:
                    self.add_error(None if target == NON_FIELD_ERRORS else target, text)
        return data


class DeliveryEventInline(admin.TabularInline):
    model = DeliveryEvent
    fields = ("status", "occurred_at", "detail", "received_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Sender)
class SenderAdmin(AdminsOnlyMixin):
    access_area = "senders"
    form = SenderForm
    list_display = ("channel", "from_address", "provider", "tenant", "is_active", "last_test_at")
    list_filter = ("channel", "provider", "tenant")
    search_fields = ("from_address", "from_name")
    readonly_fields = ("stored_credentials", "receipt_address", "last_test_at", "last_test_result")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Sender]:
        return super().get_queryset(request).select_related("tenant")

    @admin.display(description="Credentials stored")
    def stored_credentials(self, obj: Sender) -> str:
        return ", ".join(stored_secret_names(obj)) or "none"

    @admin.display(description="Receipt URL (give it to the provider)")
    def receipt_address(self, obj: Sender) -> str:
        return receipt_url(obj) if obj.pk else ""

    def save_model(self, request: HttpRequest, obj: Sender, form: Any, change: bool) -> None:
        self.check_tenant(request, obj)
        data = form.cleaned_data
        saved = save_sender(
            tenant=data["tenant"],
            channel=data["channel"],
            provider=data["provider"],
            from_address=data["from_address"],
            from_name=data.get("from_name", ""),
            reply_to=data.get("reply_to", ""),
            options=data.get("settings") or {},
            credentials=form.credentials(),
            is_active=data.get("is_active", True),
        )
        obj.pk, obj.credentials = saved.pk, saved.credentials
        obj._state.adding = False
        if data.get("test_to"):
            try:
                result = send_test(saved, to=data["test_to"])
            except ValidationError as error:
                result = f"Failed: {'; '.join(error.messages)}"
            level = messages.SUCCESS if result.startswith("Sent") else messages.ERROR
            self.message_user(request, f"Test: {result}", level)
