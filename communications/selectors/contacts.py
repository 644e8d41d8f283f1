"""Reads of contacts: a tenant's contacts searched and filtered, one contact, the tags in use."""

import re
from datetime import datetime

from django.db import connection
from django.db.models import Q, QuerySet

from communications.models import Contact
from tenants.models import Tenant

ORDERINGS = ("name", "email", "company", "created_at", "updated_at")


def list_contacts(
    *,
    tenant: Tenant,
    search: str = "",
    tags: list[str] | None = None,
    opted_out: bool | None = None,
    source: str = "",
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    ordering: str = "-created_at",
) -> QuerySet[Contact]:
    """The tenant's contacts; `tags` keeps contacts having every one of them."""
    contacts = Contact.objects.for_tenant(tenant)
    if search:
        contacts = contacts.filter(search_filter(search))
    if tags:
        contacts = contacts.filter(tags__contains=tags)
    if opted_out is not None:
        contacts = contacts.filter(opted_out=opted_out)
    if source:
        contacts = contacts.filter(source=source)
    if created_after is not None:
        contacts = contacts.filter(created_at__gte=created_after)
    if created_before is not None:
        contacts = contacts.filter(created_at__lt=created_before)
    return contacts.order_by(ordering, "-id" if ordering.startswith("-") else "id")


def search_filter(text: str) -> Q:
    """Name, email or company containing `text`; a number-like text also matches phones."""
    text = text.strip()
    match = Q(name__icontains=text) | Q(email__icontains=text) | Q(company__icontains=text)
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 3 and re.fullmatch(r"[\d\s()+.\-]+", text):
        match |= Q(phone__contains=digits)
    return match


def get_contact(*, tenant: Tenant, pk: int) -> Contact:
    """The tenant's contact; another tenant's raises DoesNotExist like a missing one."""
    return Contact.objects.for_tenant(tenant).get(pk=pk)


def tags_in_use(*, tenant_ids: list[int] | None, limit: int = 100) -> list[str]:
    """The most used tags among the given tenants' contacts (None: every tenant)."""
    where, params = "", []
    if tenant_ids is not None:
        where, params = "WHERE tenant_id = ANY(%s)", [tenant_ids]
    sql = (
        "SELECT tag FROM communications_contact, unnest(tags) AS tag "
        f"{where} GROUP BY tag ORDER BY count(*) DESC, tag LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return [row[0] for row in cursor.fetchall()]
