"""Admin: alert rules with their recipients, incidents (acknowledge, silence), digest opt-ins.

Tenant admins and owners manage their tenants' rules, which watch only their own jobs and tell
only their own members; platform rules (no tenant) are superusers'. Every action goes through
alerts.services and is written to the admin log.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from alerts.models import AlertNotice, AlertRecipient, AlertRule, DigestSubscription, Incident
from alerts.services.digests import subscribe
from alerts.services.incidents import acknowledge_incident, silence_incident
from alerts.services.rules import (
    EDITABLE,
    check_recipient,
    check_rule,
    delete_rule,
    silence_rule,
)
from communications.admin.webhooks import AdminsOnlyMixin
from jobs.admin.display import job_link, pretty_json, short_time, status_badge

RULE_FIELDS = ("tenant", *EDITABLE)

if TYPE_CHECKING:
    _RecipientInline = admin.TabularInline[AlertRecipient, AlertRule]
    _NoticeInline = admin.TabularInline[AlertNotice, Incident]
else:
    _RecipientInline = _NoticeInline = admin.TabularInline


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ("tenant", *EDITABLE)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        rule = AlertRule(**{name: value for name, value in data.items() if name in RULE_FIELDS})
        try:
            check_rule(rule)
        except ValidationError as error:
            self.add_error(None, error)
        return data


class AlertRecipientForm(forms.ModelForm):
    class Meta:
        model = AlertRecipient
        fields = ("level", "channel", "user", "url")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        rule = getattr(self.instance, "rule", None)
        if rule is None or not self.has_changed() or self.errors:
            return data
        recipient = AlertRecipient(
            rule=rule, **{name: data.get(name) for name in ("level", "channel", "user")}
        )
        recipient.url = data.get("url") or ""
        try:
            check_recipient(rule, recipient)
        except ValidationError as error:
            self.add_error(None, error)
        return data


class AlertRecipientInline(_RecipientInline):
    model = AlertRecipient
    form = AlertRecipientForm
    extra = 1
    raw_id_fields = ("user",)


@admin.register(AlertRule)
class AlertRuleAdmin(AdminsOnlyMixin, admin.ModelAdmin):
    form = AlertRuleForm
    inlines = [AlertRecipientInline]
    list_display = ("name", "tenant", "condition", "threshold", "enabled", "silenced", "builtin")
    list_filter = ("tenant", "condition", "enabled")
    list_select_related = ("tenant",)
    search_fields = ("name",)
    readonly_fields = ("builtin", "created_by", "created_at", "updated_at")
    actions = ["enable_selected", "disable_selected", "silence_hour", "unsilence_selected"]

    @admin.display(description="Silenced until")
    def silenced(self, rule: AlertRule) -> Any:
        live = rule.silenced_until and rule.silenced_until > timezone.now()
        return short_time(rule.silenced_until) if live else "–"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.builtin:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: AlertRule, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: AlertRule) -> None:
        delete_rule(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        for rule in self.editable_queryset(request, queryset).filter(builtin=""):
            delete_rule(rule)

    def _each(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> list[AlertRule]:
        return list(self.editable_queryset(request, queryset))

    @admin.action(description="Enable selected rules", permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        rules = [rule for rule in self._each(request, queryset) if not rule.enabled]
        for rule in rules:
            AlertRule.objects.filter(pk=rule.pk).update(enabled=True)
            self.log_change(request, rule, "Enabled.")
        self.message_user(request, f"Enabled {len(rules)} rule(s).")

    @admin.action(description="Disable selected rules", permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        rules = [rule for rule in self._each(request, queryset) if rule.enabled]
        for rule in rules:
            AlertRule.objects.filter(pk=rule.pk).update(enabled=False)
            self.log_change(request, rule, "Disabled.")
        self.message_user(request, f"Disabled {len(rules)} rule(s).")

    @admin.action(description="Silence selected rules for an hour", permissions=["change"])
    def silence_hour(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        until = timezone.now() + timedelta(hours=1)
        rules = self._each(request, queryset)
        for rule in rules:
            silence_rule(rule, until=until)
            self.log_change(request, rule, f"Silenced until {until:%Y-%m-%d %H:%M %Z}.")
        self.message_user(request, f"Silenced {len(rules)} rule(s) for an hour.")

    @admin.action(description="Lift the silence of selected rules", permissions=["change"])
    def unsilence_selected(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        rules = [r for r in self._each(request, queryset) if r.silenced_until is not None]
        for rule in rules:
            silence_rule(rule, until=None)
            self.log_change(request, rule, "Silence lifted.")
        self.message_user(request, f"Lifted the silence of {len(rules)} rule(s).")


class AlertNoticeInline(_NoticeInline):
    model = AlertNotice
    extra = 0
    can_delete = False
    fields = ("created_at", "event", "channel", "user", "url", "job_shown")
    readonly_fields = fields

    @admin.display(description="Job")
    def job_shown(self, notice: AlertNotice) -> Any:
        return job_link(notice.job_id) if notice.job_id else "–"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Incident)
class IncidentAdmin(AdminsOnlyMixin, admin.ModelAdmin):
    """Incidents are opened and resolved by the checks; people acknowledge and silence them."""

    inlines = [AlertNoticeInline]
    list_display = (
        "summary",
        "rule",
        "tenant",
        "status_shown",
        "opened",
        "level",
        "acknowledged_at",
        "resolved_at",
    )
    list_filter = ("status", "tenant")
    list_select_related = ("rule", "tenant")
    search_fields = ("summary", "rule__name")
    fields = (
        "rule",
        "tenant",
        "status",
        "summary",
        "figures_shown",
        "level",
        "opened_at",
        "last_seen_at",
        "escalated_at",
        "acknowledged_at",
        "acknowledged_by",
        "silenced_until",
        "resolved_at",
    )
    readonly_fields = fields
    actions = ["acknowledge_selected", "silence_hour", "silence_day"]

    @admin.display(description="Status", ordering="status")
    def status_shown(self, incident: Incident) -> Any:
        return status_badge(incident.status)

    @admin.display(description="Opened", ordering="opened_at")
    def opened(self, incident: Incident) -> Any:
        return short_time(incident.opened_at)

    @admin.display(description="Figures")
    def figures_shown(self, incident: Incident) -> Any:
        return pretty_json(incident.figures)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Changing is acknowledging and silencing, by the tenant's admins or operators.
        if obj is None:
            return request.user.is_superuser or bool(self.editable_tenant_ids(request))
        return self.can_edit_in(request, obj.tenant_id)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _open(self, request: HttpRequest, queryset: QuerySet[Incident]) -> list[Incident]:
        editable = self.editable_queryset(request, queryset)
        return list(editable.filter(status=Incident.Status.OPEN).select_related("rule"))

    @admin.action(description="Acknowledge selected incidents", permissions=["change"])
    def acknowledge_selected(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        incidents = [i for i in self._open(request, queryset) if i.acknowledged_at is None]
        for incident in incidents:
            acknowledge_incident(incident, by=request.user)
            self.log_change(request, incident, "Acknowledged.")
        self.message_user(request, f"Acknowledged {len(incidents)} incident(s).")

    def _silence(self, request: HttpRequest, queryset: QuerySet[Incident], hours: int) -> None:
        until = timezone.now() + timedelta(hours=hours)
        incidents = self._open(request, queryset)
        for incident in incidents:
            silence_incident(incident, until=until, by=request.user)
            self.log_change(request, incident, f"Silenced until {until:%Y-%m-%d %H:%M %Z}.")
        self.message_user(request, f"Silenced {len(incidents)} incident(s) for {hours} h.")

    @admin.action(description="Silence selected incidents for an hour", permissions=["change"])
    def silence_hour(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._silence(request, queryset, 1)

    @admin.action(description="Silence selected incidents for a day", permissions=["change"])
    def silence_day(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._silence(request, queryset, 24)


@admin.register(DigestSubscription)
class DigestSubscriptionAdmin(AdminsOnlyMixin, admin.ModelAdmin):
    """Who gets a tenant's daily digest email; admins and owners opt members in or out."""

    list_display = ("user", "tenant", "created_at")
    list_filter = ("tenant",)
    list_select_related = ("user", "tenant")
    raw_id_fields = ("user",)

    def save_model(
        self, request: HttpRequest, obj: DigestSubscription, form: Any, change: bool
    ) -> None:
        self.check_tenant(request, obj)
        saved = subscribe(tenant=obj.tenant, user=obj.user)
        obj.pk = saved.pk
