"""Admin: tenants, memberships and API keys, and the mixin every tenant-owned ModelAdmin uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from weakref import WeakKeyDictionary

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db.models import ForeignKey, Q, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest

from tenants import access
from tenants.models import ApiKey, Membership, Role, Tenant
from tenants.selectors import get_role, roles_by_tenant
from tenants.services import (
    SETTINGS_FIELDS,
    add_member,
    create_api_key,
    pause_tenant,
    remove_member,
    rename_api_key,
    resume_tenant,
    revoke_api_key,
    set_role,
)

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = admin.ModelAdmin

_roles_by_request: WeakKeyDictionary[HttpRequest, dict[int, str]] = WeakKeyDictionary()


def tenant_roles(request: HttpRequest) -> dict[int, str]:
    """The user's role in each active tenant they belong to, read once per request."""
    if request not in _roles_by_request:
        _roles_by_request[request] = roles_by_tenant(request.user)
    return _roles_by_request[request]


def tenant_ids_with(request: HttpRequest, role: str) -> list[int]:
    """The active tenants where the user's role is `role` or higher."""
    needed = Role.rank(role)
    return [pk for pk, has in tenant_roles(request).items() if Role.rank(has) >= needed]


class TenantScopedAdminMixin(_ModelAdmin):
    """Scope a ModelAdmin of a model with a `tenant` foreign key by the role matrix.

    Use as `class JobAdmin(TenantScopedAdminMixin, admin.ModelAdmin)` with `access_area` naming
    the model's row in `tenants.access.MATRIX`. Access is decided by membership roles alone, not
    by Django's model permissions, so tenant staff need no permission assignments (only
    `is_staff`): members with the area's read role see its rows, those with its write role add,
    change and delete them, in those tenants only; an area of own rows shows members only the
    rows whose `user` they are. Superusers see and do everything. A plain "tenant" in
    `list_filter` offers only the tenants the user can see, and a tenant the user cannot see
    filters to nothing; actions should work on `editable_queryset(request, queryset)`. An action
    or custom view that follows another area names it in `other_areas`; an action is offered
    only to users with its area's write role in some tenant.
    """

    access_area: str = ""
    # Actions and custom admin views (by name: an action's, or a URL's name after
    # "<app>_<model>_") that follow another area of the matrix than `access_area`.
    other_areas: ClassVar[dict[str, str]] = {}

    def area_of(self, name: str) -> str:
        """The area of the matrix the action or custom admin view `name` follows."""
        return self.other_areas.get(name, self.access_area)

    @property
    def access_rule(self) -> access.Rule:
        if not self.access_area:
            raise ImproperlyConfigured(
                f"{type(self).__name__} names no access_area of tenants.access.MATRIX."
            )
        return access.rule(self.access_area)

    @property
    def edit_role(self) -> str:
        return self.access_rule.write

    def visible_tenant_ids(self, request: HttpRequest) -> list[int]:
        return tenant_ids_with(request, self.access_rule.read)

    def editable_tenant_ids(self, request: HttpRequest) -> list[int]:
        return tenant_ids_with(request, self.access_rule.write)

    def can_edit_in(self, request: HttpRequest, tenant_id: int | None) -> bool:
        return request.user.is_superuser or tenant_id in self.editable_tenant_ids(request)

    def editable_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """The rows of `queryset` the user may change: for actions on a selection."""
        if request.user.is_superuser:
            return queryset
        queryset = queryset.filter(tenant__in=self.editable_tenant_ids(request))
        return self.own_rows(request, queryset) if self.access_rule.own_rows_only else queryset

    def check_tenant(self, request: HttpRequest, obj: Any) -> None:
        """Refuse to save `obj` in a tenant where the user may not edit."""
        if not self.can_edit_in(request, obj.tenant_id):
            raise PermissionDenied("You may not edit rows of this tenant.")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        queryset = queryset.filter(tenant__in=self.visible_tenant_ids(request))
        if self.access_rule.own_rows_only:
            queryset = self.own_rows(request, queryset)
        return queryset

    def own_rows(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """The rows of an own-rows area a member may see: those whose user they are."""
        return queryset.filter(user=request.user)

    def is_own_row(self, request: HttpRequest, obj: Any) -> bool:
        return bool(obj.user_id == request.user.pk)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ScopedChangeList

    def get_actions(
        self, request: HttpRequest, action_location: ActionLocation = ActionLocation.CHANGE_LIST
    ) -> dict[str, Any]:
        """Only the actions the user may take in some tenant: the write role of their area."""
        actions = super().get_actions(request, action_location)
        if request.user.is_superuser:
            return actions
        return {
            name: action
            for name, action in actions.items()
            if tenant_ids_with(request, access.required_role(self.area_of(name), write=True))
        }

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(self.visible_tenant_ids(request))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if request.user.is_superuser:
            return True
        if obj is None:
            return bool(self.visible_tenant_ids(request))
        if self.access_rule.own_rows_only and not self.is_own_row(request, obj):
            return False
        return obj.tenant_id in self.visible_tenant_ids(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(self.editable_tenant_ids(request))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        if not self.has_view_permission(request, obj):
            return False
        return self.can_edit_in(request, obj.tenant_id)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request, obj)

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        if db_field.name == "tenant" and not request.user.is_superuser:
            kwargs["queryset"] = Tenant.objects.filter(pk__in=self.editable_tenant_ids(request))
            kwargs["required"] = True
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        return [
            ("tenant", admin.RelatedOnlyFieldListFilter) if name == "tenant" else name
            for name in super().get_list_filter(request)
        ]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        self.check_tenant(request, obj)
        super().save_model(request, obj, form, change)


class ScopedChangeList(ChangeList):
    """A changelist where a tenant in the query the user cannot see gives no rows.

    Django drops a filter parameter its list filters do not offer, or one naming a tenant the
    scoped queryset lacks, and then "all N matching" would reach every row the user sees.
    """

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> Any:
        queryset = super().get_queryset(request, exclude_parameters)
        named = _tenant_params(request)
        if named is None or request.user.is_superuser:
            return queryset
        visible = {str(pk) for pk in tenant_roles(request)}
        if not named <= visible:
            return queryset.none()
        return queryset


TENANT_PARAMETERS = frozenset(
    {"tenant", "tenant_id", "tenant__exact", "tenant__id__exact", "tenant__id__in", "tenant__in"}
)


def _tenant_params(request: HttpRequest) -> set[str] | None:
    """The tenant ids a changelist's query names (None when it names none)."""
    named = {
        part
        for key, values in request.GET.lists()
        if key in TENANT_PARAMETERS
        for value in values
        for part in value.split(",")
    }
    return named or None


@admin.register(Tenant)
class TenantAdmin(_ModelAdmin):
    """Superusers add and delete tenants and set how their jobs are dispatched (weight, paused
    queues, backlog caps, rate and concurrency limits); owners change what the owners' API
    changes (`SETTINGS_FIELDS`), every other field is read-only to them."""

    list_display = ("name", "slug", "is_active", "weight", "paused", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "slug")
    actions = ("pause_work", "resume_work")

    @admin.display(description="Paused queues")
    def paused(self, obj: Tenant) -> str:
        return ", ".join("all" if name == "*" else name for name in obj.paused_queues) or "—"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if request.user.is_superuser:
            return ("created_at",)
        # A field owners may not change is left out of the form, so a crafted POST cannot set it.
        return tuple(
            field.name
            for field in Tenant._meta.fields
            if not field.primary_key and field.name not in SETTINGS_FIELDS
        )

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Dispatch of a tenant's jobs concerns every tenant's: platform operators only."""
        return request.user.is_superuser

    @admin.action(description="Pause all work of selected tenants", permissions=["operate"])
    def pause_work(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        tenants = [tenant for tenant in queryset if not tenant.is_paused("*")]
        for tenant in tenants:
            pause_tenant(tenant, by=request.user)  # written to the admin log
        self.message_user(request, f"Paused {len(tenants)} tenant(s): their jobs wait.")

    @admin.action(description="Resume all work of selected tenants", permissions=["operate"])
    def resume_work(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        tenants = [tenant for tenant in queryset if tenant.paused_queues]
        for tenant in tenants:
            resume_tenant(tenant, by=request.user)
        self.message_user(request, f"Resumed {len(tenants)} tenant(s).")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(pk__in=list(tenant_roles(request)))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(tenant_roles(request))

    def has_view_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        if request.user.is_superuser:
            return True
        return obj.pk in tenant_roles(request) if obj else bool(tenant_roles(request))

    def has_change_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        if request.user.is_superuser:
            return True
        owned = [pk for pk, role in tenant_roles(request).items() if role == Role.OWNER]
        return obj.pk in owned if obj else bool(owned)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdminMixin):
    """Owners manage their tenants' members; new users are created by a superuser."""

    access_area = "memberships"
    list_display = ("user", "tenant", "role", "created_at")
    list_filter = ("tenant", "role")
    list_select_related = ("user", "tenant")
    search_fields = ("user__username", "user__email", "tenant__slug", "tenant__name")
    ordering = ("tenant__name", "user__username")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("user", "tenant", "created_at") if obj else ()

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        if db_field.name == "user" and not request.user.is_superuser:
            # Owners choose among the people of their own tenants, never the whole user table.
            colleagues = User.objects.filter(
                memberships__tenant__in=self.editable_tenant_ids(request)
            )
            kwargs["queryset"] = colleagues.distinct().order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        self.check_tenant(request, obj)
        if change:
            set_role(obj, role=obj.role)
            return
        membership = add_member(obj.tenant, user=obj.user, role=obj.role)
        obj.pk, obj.created_at = membership.pk, membership.created_at

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        remove_member(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset.select_related("user"):
            remove_member(membership)


class ApiKeyCreateForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("user", "tenant", "name")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        user, tenant = data.get("user"), data.get("tenant")
        if user is not None and tenant is not None and get_role(user, tenant) is None:
            self.add_error("tenant", f"{user} is not a member of {tenant.slug}.")
        return data


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdminMixin):
    """Keys are made by create_api_key, which shows the raw key once, and revoked by an action.

    Tenant staff make keys for themselves, bound to a tenant where they are admin or owner, and
    manage their own; an owner also sees, renames and revokes every key of the tenant.
    """

    access_area = "api_keys"

    def own_rows(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        owned = tenant_ids_with(request, Role.OWNER)
        return queryset.filter(Q(user=request.user) | Q(tenant__in=owned))

    def is_own_row(self, request: HttpRequest, obj: Any) -> bool:
        return bool(
            obj.user_id == request.user.pk or obj.tenant_id in tenant_ids_with(request, Role.OWNER)
        )

    list_display = ("name", "key", "user", "tenant", "created_at", "last_used_at", "revoked_at")
    list_filter = ("tenant", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("user", "tenant")
    search_fields = ("name", "lookup", "user__username", "tenant__slug")
    ordering = ("-created_at",)
    actions = ["revoke_selected"]

    @admin.display(description="Key")
    def key(self, obj: ApiKey) -> str:
        return f"{ApiKey.PREFIX}_{obj.lookup}_…"

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ("user", "tenant", "name")
        return ("name", "key", "user", "tenant", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return ("key", "user", "tenant", "created_at", "last_used_at", "revoked_at")

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Any]]:
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change, **kwargs)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"user": request.user.pk, **super().get_changeform_initial_data(request)}

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = User.objects.filter(username=request.user.get_username())
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        self.check_tenant(request, obj)
        if change:
            rename_api_key(obj, name=obj.name)
            return
        key, raw_key = create_api_key(user=obj.user, name=obj.name, tenant=obj.tenant)
        obj.pk, obj.lookup, obj.digest = key.pk, key.lookup, key.digest
        obj.created_at = key.created_at
        self.message_user(
            request,
            f"The new API key is {raw_key} — copy it now: it will not be shown again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        keys = list(self.editable_queryset(request, queryset).filter(revoked_at__isnull=True))
        for key in keys:
            revoke_api_key(key)
        self.message_user(request, f"Revoked {len(keys)} key(s).")
