"""Writing an import batch's contacts: one INSERT and one UPDATE over arrays, not row by row.

Each statement takes its rows as a handful of array parameters unnested on the server, so a
batch costs two round trips whatever its size, with none of the per-row SQL that Django's
`bulk_create` / `bulk_update` generate (measured in `bench.imports`, see docs/imports.md).
"""

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection

from communications.models import Contact

ROW_COLUMNS = ("name", "email", "phone", "company", "tags", "opted_out", "custom_fields")
_ROW_TYPES = {"id": "bigint", "opted_out": "boolean"}
_TABLE = Contact._meta.db_table


def _row_arrays(drafts: Sequence[Any]) -> dict[str, list[Any]]:
    """One array per column; tags and custom fields travel as JSON text."""
    return {
        "name": [draft.name for draft in drafts],
        "email": [draft.email for draft in drafts],
        "phone": [draft.phone for draft in drafts],
        "company": [draft.company for draft in drafts],
        "tags": [json.dumps(draft.tags) for draft in drafts],
        "opted_out": [draft.opted_out for draft in drafts],
        "custom_fields": [json.dumps(draft.custom_fields) for draft in drafts],
    }


def _value(column: str, source: str) -> str:
    if column == "tags":
        return f"ARRAY(SELECT jsonb_array_elements_text({source}.tags::jsonb))"
    if column == "custom_fields":
        return f"{source}.custom_fields::jsonb"
    return f"{source}.{column}"


def _unnest(names: Sequence[str]) -> str:
    arrays = ", ".join(f"%({name})s::{_ROW_TYPES.get(name, 'text')}[]" for name in names)
    return f"unnest({arrays}) AS row({', '.join(names)})"


def _constants(*, tenant_id: int, user_id: int | None, now: datetime) -> dict[str, Any]:
    """The value of every other column of a new contact: what the model would save."""
    given: dict[str, Any] = {
        "tenant_id": tenant_id,
        "source": Contact.Source.IMPORT,
        "created_by_id": user_id,
        "created_at": now,
        "updated_at": now,
    }
    for field in Contact._meta.concrete_fields:
        if field.primary_key or field.attname in given or field.name in ROW_COLUMNS:
            continue
        given[field.attname] = field.get_db_prep_save(field.get_default(), connection)
    return given


def insert_contacts(
    drafts: Sequence[Any], *, tenant_id: int, user_id: int | None, now: datetime
) -> dict[tuple[str, str], int]:
    """Insert the drafts as new contacts; returns each new id by (email, phone)."""
    if not drafts:
        return {}
    constants = _constants(tenant_id=tenant_id, user_id=user_id, now=now)
    columns = [*constants, *ROW_COLUMNS]
    values = [f"%(const_{name})s" for name in constants]
    values += [_value(column, "row") for column in ROW_COLUMNS]
    sql = (
        f'INSERT INTO "{_TABLE}" ({", ".join(columns)}) '
        f"SELECT {', '.join(values)} FROM {_unnest(ROW_COLUMNS)} "
        "RETURNING id, email, phone"
    )
    params = {**_row_arrays(drafts), **{f"const_{k}": v for k, v in constants.items()}}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(email, phone): pk for pk, email, phone in cursor.fetchall()}


def update_contacts(drafts: Sequence[Any], *, tenant_id: int, now: datetime) -> int:
    """Write the drafts' fields over their contacts (of this tenant only); returns the count."""
    if not drafts:
        return 0
    assignments = ", ".join(f"{column} = {_value(column, 'row')}" for column in ROW_COLUMNS)
    sql = (
        f'UPDATE "{_TABLE}" AS contact SET {assignments}, updated_at = %(now)s '
        f"FROM {_unnest(['id', *ROW_COLUMNS])} "
        "WHERE contact.id = row.id AND contact.tenant_id = %(tenant_id)s"
    )
    params: dict[str, Any] = {
        "id": [draft.contact_id for draft in drafts],
        **_row_arrays(drafts),
        "now": now,
        "tenant_id": tenant_id,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
