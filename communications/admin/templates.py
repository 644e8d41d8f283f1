"""Admin: message templates, with a preview page and the built-in defaults to start from.

Tenant admins and owners edit their tenants' templates; members may look at them and preview
them. A template that does not compile, or that uses a variable its sample does not define, is
refused by the form at the field at fault.
"""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from communications.models import MessageTemplate
from communications.selectors.templates import BuiltinTemplate, builtin_templates, get_builtin
from communications.services.templates import (
    EDITABLE,
    TemplateRenderError,
    check_template,
    create_template,
    delete_template,
    preview_template,
    update_template,
)
from tenants.admin import TenantScopedAdminMixin
from tenants.models import Tenant

SAMPLE_TENANT = Tenant(name="Example Ltd", slug="example")


class MessageTemplateForm(forms.ModelForm):
    """Refuses exactly what the services refuse, each message at its field."""

    class Meta:
        model = MessageTemplate
        fields = ("tenant", *EDITABLE)
        widgets = {
            "subject": forms.TextInput(attrs={"size": 80}),
            "html_body": forms.Textarea(attrs={"rows": 20, "cols": 100, "spellcheck": "false"}),
            "text_body": forms.Textarea(attrs={"rows": 12, "cols": 100}),
            "body": forms.Textarea(attrs={"rows": 5, "cols": 100}),
        }

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        tenant = data.get("tenant") or getattr(self.instance, "tenant", None)
        if tenant is None or self.errors:
            return data
        if data.get("sample_variables") in (None, ""):
            data["sample_variables"] = {}
        candidate = copy.copy(self.instance)
        candidate.tenant = tenant
        for name in EDITABLE:
            if name in data:
                setattr(candidate, name, data[name] if data[name] is not None else "")
        try:
            check_template(candidate)
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
        return data


@admin.register(MessageTemplate)
class MessageTemplateAdmin(TenantScopedAdminMixin):
    access_area = "templates"
    form = MessageTemplateForm
    list_display = ("name", "channel", "tenant", "description", "updated_at", "preview_link")
    list_filter = ("tenant", "channel")
    list_select_related = ("tenant",)
    search_fields = ("name", "description", "subject")
    ordering = ("tenant__name", "name", "channel")
    change_list_template = "communications/admin/template_change_list.html"

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[tuple[Any, Any]]:
        fieldsets: list[tuple[Any, Any]] = [
            (None, {"fields": ("tenant", "name", "channel", "description")}),
            (
                "Email",
                {
                    "fields": ("subject", "html_body", "text_body"),
                    "description": "Variables: {{ contact.first_name }}, {{ tenant.name }}, "
                    "and your own (give them example values below). Optional values: "
                    "{% if x %}…{% endif %} or {% firstof x 'fallback' %}.",
                },
            ),
            ("SMS and WhatsApp", {"fields": ("body",)}),
            ("Sample data", {"fields": ("sample_variables",)}),
        ]
        if obj is not None:
            fieldsets.append(("History", {"fields": ("preview_link", "created_at", "updated_at")}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return ("tenant", "preview_link", "created_at", "updated_at")

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """`?builtin=welcome&channel=email` starts from that built-in's source."""
        initial = super().get_changeform_initial_data(request)
        builtin = get_builtin(
            request.GET.get("builtin", ""), channel=request.GET.get("channel", "")
        )
        if builtin is None:
            return initial
        return {**initial, **{name: getattr(builtin, name) for name in EDITABLE}}

    @admin.display(description="Preview")
    def preview_link(self, template: MessageTemplate) -> SafeString | str:
        if template.pk is None:
            return "–"
        url = reverse("admin:communications_messagetemplate_preview", args=[template.pk])
        return format_html('<a href="{}">Preview with sample data</a>', url)

    # --- Saving and deleting through the services ---------------------------------------------

    def save_model(
        self, request: HttpRequest, obj: MessageTemplate, form: Any, change: bool
    ) -> None:
        self.check_tenant(request, obj)
        fields = {name: form.cleaned_data[name] for name in EDITABLE if name in form.cleaned_data}
        if change:
            # The form already set the new values on `obj`: start from the stored row.
            stored = MessageTemplate.objects.get(pk=obj.pk)
            saved = update_template(stored, **fields)
        else:
            saved = create_template(tenant=obj.tenant, by=request.user, **fields)
        obj.pk, obj.created_at, obj.updated_at = saved.pk, saved.created_at, saved.updated_at

    def delete_model(self, request: HttpRequest, obj: MessageTemplate) -> None:
        delete_template(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[MessageTemplate]) -> None:
        for template in self.editable_queryset(request, queryset):
            delete_template(template)

    # --- Preview and built-ins ------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/preview/",
                view(self.preview_view),
                name="communications_messagetemplate_preview",
            ),
            path(
                "builtins/",
                view(self.builtins_view),
                name="communications_messagetemplate_builtins",
            ),
            path(
                "builtins/<slug:name>/<slug:channel>/preview/",
                view(self.builtin_preview_view),
                name="communications_messagetemplate_builtin_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        template = self.get_object(request, str(pk))
        if template is None or not self.has_view_permission(request, template):
            raise Http404("No such template.")
        return self._render_preview(request, template, tenant=template.tenant)

    def builtins_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Built-in message templates",
            "builtins": builtin_templates(),
            "can_add": self.has_add_permission(request),
        }
        return TemplateResponse(request, "communications/admin/template_builtins.html", context)

    def builtin_preview_view(self, request: HttpRequest, name: str, channel: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        builtin = get_builtin(name, channel=channel)
        if builtin is None:
            raise Http404("No such built-in template.")
        return self._render_preview(request, builtin, tenant=SAMPLE_TENANT)

    def _render_preview(
        self, request: HttpRequest, template: MessageTemplate | BuiltinTemplate, *, tenant: Tenant
    ) -> HttpResponse:
        rendered, error = None, ""
        try:
            rendered = preview_template(template, tenant=tenant)
        except TemplateRenderError as problem:
            error = str(problem)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Preview: {template}",
            "template": template,
            "is_builtin": isinstance(template, BuiltinTemplate),
            "rendered": rendered,
            "error": error,
        }
        return TemplateResponse(request, "communications/admin/template_preview.html", context)
