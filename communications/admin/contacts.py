"""Admin: contacts. Agents and up edit their tenants' contacts; every write is a service call."""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from communications.admin.transfer_forms import importable_tenants
from communications.models import Contact
from communications.selectors.contacts import tags_in_use
from communications.services.contacts import (
    EDITABLE,
    check_contact,
    clean_contact_fields,
    create_contact,
    delete_contact,
    update_contact,
)
from tenants.admin import TenantScopedAdminMixin, tenant_roles


class ContactForm(forms.ModelForm):
    """Refuses what the services refuse (bad email or phone, duplicates), at the right field."""

    phone = forms.CharField(
        max_length=40,
        required=False,
        help_text="Any common format; without +country the tenant's default region applies.",
    )

    class Meta:
        model = Contact
        fields = ("tenant", *EDITABLE)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        tenant = data.get("tenant") or getattr(self.instance, "tenant", None)
        if tenant is None or self.errors:
            return data
        fields = {name: data[name] for name in EDITABLE if name in data}
        try:
            data.update(clean_contact_fields(tenant=tenant, **fields))
            candidate = copy.copy(self.instance)
            candidate.tenant = tenant
            for name in EDITABLE:
                setattr(candidate, name, data.get(name, getattr(candidate, name)))
            check_contact(candidate)
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
        return data


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        tenant_ids = None if request.user.is_superuser else list(tenant_roles(request))
        return [(tag, tag) for tag in tags_in_use(tenant_ids=tenant_ids)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Contact]) -> QuerySet[Contact]:
        if self.value():
            return queryset.filter(tags__contains=[self.value()])
        return queryset


@admin.register(Contact)
class ContactAdmin(TenantScopedAdminMixin):
    """Agents and up edit their tenants' contacts; admins and owners also import and export
    (the Import and Export buttons lead to the contact imports' and exports' add pages)."""

    form = ContactForm
    change_list_template = "communications/admin/contact_change_list.html"
    access_area = "contacts"
    list_display = (
        "__str__",
        "email",
        "phone",
        "company",
        "tag_list",
        "opted_out",
        "source",
        "tenant",
        "created_at",
    )
    list_filter = ("tenant", TagFilter, "opted_out", "source")
    list_select_related = ("tenant",)
    search_fields = ("name", "email", "phone", "company")
    ordering = ("-created_at", "-id")
    readonly_fields = ("source", "created_by", "created_at", "updated_at")
    show_full_result_count = False
    actions = ["opt_out_selected", "opt_in_selected"]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        can_transfer = importable_tenants(request).exists()
        return super().changelist_view(
            request, {**(extra_context or {}), "can_transfer": can_transfer}
        )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[tuple[Any, Any]]:
        fieldsets: list[tuple[Any, Any]] = [
            (None, {"fields": ("tenant", "name", "email", "phone", "company")}),
            ("Segments", {"fields": ("tags", "opted_out", "custom_fields")}),
        ]
        if obj is not None:
            fieldsets.append(("History", {"fields": self.readonly_fields}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("tenant", *self.readonly_fields) if obj is not None else ()

    @admin.display(description="Tags")
    def tag_list(self, contact: Contact) -> str:
        return ", ".join(contact.tags)

    def save_model(self, request: HttpRequest, obj: Contact, form: Any, change: bool) -> None:
        self.check_tenant(request, obj)
        fields = {name: form.cleaned_data[name] for name in EDITABLE if name in form.cleaned_data}
        if change:
            # The form already set the new values on `obj`: compare against the stored row.
            saved = update_contact(Contact.objects.get(pk=obj.pk), by=request.user, **fields)
        else:
            saved = create_contact(
                tenant=obj.tenant, by=request.user, source=Contact.Source.ADMIN, **fields
            )
        obj.pk, obj.created_at, obj.updated_at = saved.pk, saved.created_at, saved.updated_at

    @admin.action(description="Opt out selected contacts", permissions=["change"])
    def opt_out_selected(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        self._set_opted_out(request, queryset, opted_out=True)

    @admin.action(description="Opt in selected contacts", permissions=["change"])
    def opt_in_selected(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        self._set_opted_out(request, queryset, opted_out=False)

    def _set_opted_out(
        self, request: HttpRequest, queryset: QuerySet[Contact], *, opted_out: bool
    ) -> None:
        editable = self.editable_queryset(request, queryset).exclude(opted_out=opted_out)
        contacts = list(editable.select_related("tenant"))
        for contact in contacts:
            update_contact(contact, by=request.user, opted_out=opted_out)
        verb = "Opted out" if opted_out else "Opted in"
        self.message_user(request, f"{verb} {len(contacts)} contact(s).")

    def delete_model(self, request: HttpRequest, obj: Contact) -> None:
        delete_contact(obj, by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        for contact in self.editable_queryset(request, queryset).select_related("tenant"):
            delete_contact(contact, by=request.user)
