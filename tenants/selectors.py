"""Reads: a user's tenants and roles, and which tenant a request acts in."""

import functools
from collections.abc import Sequence
from typing import Any, cast

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.db.models import Field, Model, QuerySet
from rest_framework.exceptions import NotFound, ParseError, PermissionDenied

from tenants.models import ApiKey, Membership, Role, Tenant

TENANT_HEADER = "X-Tenant"


def tenants_for_user(user: User | AnonymousUser) -> QuerySet[Tenant]:
    """The active tenants `user` belongs to; every active tenant for a superuser."""
    if not user.is_authenticated:
        return Tenant.objects.none()
    tenants = Tenant.objects.filter(is_active=True)
    if user.is_superuser:
        return tenants
    return tenants.filter(memberships__user=user)


def memberships_for_user(
    user: User | AnonymousUser, *, tenant: Tenant | None = None
) -> QuerySet[Membership]:
    """`user`'s memberships (only the one in `tenant` when given), with their tenants."""
    if not user.is_authenticated:
        return Membership.objects.none()
    memberships = Membership.objects.filter(user=user).select_related("tenant")
    if tenant is not None:
        memberships = memberships.for_tenant(tenant)
    return memberships.order_by("tenant__name", "tenant__slug")


def get_role(user: User | AnonymousUser, tenant: Tenant) -> str | None:
    """`user`'s role in `tenant`: owner for a superuser, None for a non-member."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.OWNER
    return (
        Membership.objects.for_tenant(tenant)
        .filter(user=user)
        .values_list("role", flat=True)
        .first()
    )


def roles_by_tenant(user: User | AnonymousUser) -> dict[int, str]:
    """`user`'s role in each active tenant they belong to, keyed by tenant id."""
    if not user.is_authenticated:
        return {}
    memberships = Membership.objects.filter(user=user, tenant__is_active=True)
    return dict(memberships.values_list("tenant_id", "role"))


def resolve_tenant(
    *, user: User | AnonymousUser, api_key: ApiKey | None, slug: str
) -> tuple[Tenant, str]:
    """The tenant a request acts in and the user's role there, or the API error that says why not.

    `slug` is the X-Tenant header ("" when absent); a key bound to a tenant acts only there.
    Another tenant and a missing one answer the same 404.
    """
    if api_key is not None and api_key.tenant is not None:
        if slug and slug != api_key.tenant.slug:
            raise PermissionDenied(
                f"This API key acts only in tenant {api_key.tenant.slug!r}, "
                f"not in {slug!r}: drop the {TENANT_HEADER} header or use another key."
            )
        known = None if user.is_superuser else getattr(api_key, "bound_role", None)
        return _check_access(user, api_key.tenant, api_key.tenant.slug, role=known)
    if not slug:
        return _only_tenant(user)
    return _check_access(user, Tenant.objects.filter(slug=slug).first(), slug)


def _check_access(
    user: User | AnonymousUser, tenant: Tenant | None, slug: str, *, role: str | None = None
) -> tuple[Tenant, str]:
    """`role`, when the caller read it already (an API key's query), saves reading it again."""
    if role is None and tenant is not None:
        role = get_role(user, tenant)
    if tenant is None or role is None:
        raise NotFound(f"No tenant {slug!r}.")
    if not tenant.is_active:  # checked after membership, so outsiders learn nothing
        raise PermissionDenied("The tenant is inactive.")
    return tenant, role


def _only_tenant(user: User | AnonymousUser) -> tuple[Tenant, str]:
    choices = _tenant_choices(user)
    if not choices:
        raise PermissionDenied("You are not a member of any active tenant.")
    if len(choices) > 1:
        raise ParseError(
            f"You belong to several tenants: send the header '{TENANT_HEADER}: <slug>' "
            "to choose one."
        )
    return choices[0]


def _tenant_choices(user: User | AnonymousUser) -> list[tuple[Tenant, str]]:
    """Up to two (tenant, role) pairs: enough to tell none, one and several apart."""
    if user.is_superuser:
        return [(tenant, Role.OWNER) for tenant in tenants_for_user(user)[:2]]
    memberships = memberships_for_user(user).filter(tenant__is_active=True)[:2]
    return [(membership.tenant, membership.role) for membership in memberships]


def colleagues(user: User) -> QuerySet[User]:
    """The people `user` may add to a tenant they own: members of any tenant they own (the
    admin's rule); every active user for a superuser. Never the whole user table otherwise."""
    if user.is_superuser:
        return User.objects.filter(is_active=True)
    owned = [pk for pk, role in roles_by_tenant(user).items() if role == Role.OWNER]
    return User.objects.filter(is_active=True, memberships__tenant__in=owned).distinct()


def tenant_members(tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.for_tenant(tenant).select_related("user").order_by("user__username")


def find_api_key(lookup: str) -> ApiKey | None:
    """The unrevoked key with this lookup, with its user and tenant, and as `bound_role` the
    user's role in the key's tenant (None without a tenant or a membership there).

    Every API request with a key reads it, so the statement is written once from the models'
    fields: compiling it with the ORM cost more CPU than PostgreSQL spends running it.
    """
    with connection.cursor() as cursor:
        cursor.execute(_api_key_sql(), [lookup])
        row = cursor.fetchone()
    if row is None:
        return None
    key_end = len(ApiKey._meta.concrete_fields)
    user_end = key_end + len(_user_model()._meta.concrete_fields)
    key = _from_row(ApiKey, row[:key_end])
    key.user = _from_row(_user_model(), row[key_end:user_end])
    key.tenant = None if key.tenant_id is None else _from_row(Tenant, row[user_end:-1])
    key.bound_role = row[-1]  # type: ignore[attr-defined]
    return key


def _user_model() -> type[User]:
    return cast(type[User], ApiKey._meta.get_field("user").related_model)


@functools.cache
def _api_key_sql() -> str:
    def table(model: type[Model]) -> str:
        return connection.ops.quote_name(model._meta.db_table)

    def column(model: type[Model], name: str) -> str:
        return connection.ops.quote_name(str(cast(Field, model._meta.get_field(name)).column))

    def pk(model: type[Model]) -> str:
        return connection.ops.quote_name(str(cast(Field, model._meta.pk).column))

    def columns(model: type[Model], alias: str) -> str:
        return ", ".join(f"{alias}.{column(model, f.name)}" for f in model._meta.concrete_fields)

    user, membership = _user_model(), Membership
    role = (
        f"SELECT m.{column(membership, 'role')} FROM {table(membership)} m"
        f" WHERE m.{column(membership, 'user')} = k.{column(ApiKey, 'user')}"
        f" AND m.{column(membership, 'tenant')} = k.{column(ApiKey, 'tenant')} LIMIT 1"
    )
    return (
        f"SELECT {columns(ApiKey, 'k')}, {columns(user, 'u')}, {columns(Tenant, 't')}, ({role})"
        f" FROM {table(ApiKey)} k"
        f" JOIN {table(user)} u ON u.{pk(user)} = k.{column(ApiKey, 'user')}"
        f" LEFT JOIN {table(Tenant)} t ON t.{pk(Tenant)} = k.{column(ApiKey, 'tenant')}"
        f" WHERE k.{column(ApiKey, 'lookup')} = %s AND k.{column(ApiKey, 'revoked_at')} IS NULL"
        " LIMIT 1"
    )


def _from_row[M: Model](model: type[M], values: Sequence[Any]) -> M:
    """An instance of `model` from its columns, converted as the ORM converts them."""
    names, converters = _loading(model)
    converted = list(values)
    for index, field, convert in converters:
        if converted[index] is not None:
            converted[index] = convert(converted[index], field, connection)
    return model.from_db(connection.alias, names, converted)


@functools.cache
def _loading(model: type[Model]) -> tuple[list[str], list[tuple[int, Field, Any]]]:
    fields = model._meta.concrete_fields
    converters = [
        (index, field, convert)
        for index, field in enumerate(fields)
        for convert in field.get_db_converters(connection)
    ]
    return [field.attname for field in fields], converters
