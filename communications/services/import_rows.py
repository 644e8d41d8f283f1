"""Reading contact rows: matching file columns to fields, cleaning values, planning outcomes.

`Planner` decides each row's outcome (new, updated, skipped, invalid) against every contact
seen so far, in the file or in the tenant's database, by email and by phone. A real import
and a dry run use the same plan; only the real one writes it.
"""

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from rest_framework import serializers

from communications.addresses import normalize_email, normalize_phone
from communications.models import Contact, ContactImport
from communications.services.import_files import is_not_an_object
from tenants.models import Tenant

ERRORS_SHOWN = 100
FIELDS = (
    "name",
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "tags",
    "opted_out",
    "custom_fields",
)
CUSTOM_PREFIX = "custom_fields."
# Headers are compared lowercased with everything but letters and digits removed.
HEADER_ALIASES = {
    "email": "email",
    "emailaddress": "email",
    "mail": "email",
    "emailaddr": "email",
    "phone": "phone",
    "phonenumber": "phone",
    "mobile": "phone",
    "mobilephone": "phone",
    "mobilenumber": "phone",
    "cell": "phone",
    "cellphone": "phone",
    "telephone": "phone",
    "tel": "phone",
    "name": "name",
    "fullname": "name",
    "contactname": "name",
    "displayname": "name",
    "firstname": "first_name",
    "givenname": "first_name",
    "lastname": "last_name",
    "surname": "last_name",
    "familyname": "last_name",
    "company": "company",
    "companyname": "company",
    "organization": "company",
    "organisation": "company",
    "tags": "tags",
    "tag": "tags",
    "labels": "tags",
    "optedout": "opted_out",
    "optout": "opted_out",
    "unsubscribed": "opted_out",
    "customfields": "custom_fields",
}
# Exports of other tools number and qualify their columns: Google Contacts ("E-mail 1 - Value",
# "Phone 2 - Value", "Organization Name", "Labels"), Outlook ("E-mail 2 Address", "Business
# Phone", "Categories"), HubSpot ("Mobile Phone Number", "Company Name"), Mailchimp ("Email
# Address", "TAGS"). These patterns read the normalised header; "… - Type" columns match none.
HEADER_PATTERNS = (
    (re.compile(r"^e?mail\d*(address|value)?\d*$"), "email"),
    (
        re.compile(
            r"^(primary|mobile|home|business|work|other|company|main|cell)?"
            r"(phone|mobile|cell|telephone|tel)\d*(number|value)?\d*$"
        ),
        "phone",
    ),
    (re.compile(r"^(organization|organisation)\d*(name|value)?$"), "company"),
    (re.compile(r"^(middlename|additionalname)$"), ""),
    (re.compile(r"^(labels|categories|groupmembership|lists?)$"), "tags"),
)
# Several email or phone columns: the first filled one is the contact's, the others are kept in
# custom_fields under their header. Such a column's target is "email|<header>".
REPEATABLE = ("email", "phone")
ALTERNATE = "|"
SYSTEM_LABELS = frozenset({"mycontacts", "starred"})  # Google's own groups, not the user's
TRUE_WORDS = frozenset({"true", "yes", "y", "1", "t", "x"})
FALSE_WORDS = frozenset({"false", "no", "n", "0", "f", ""})
MAX_LENGTHS = {"name": 200, "company": 200, "email": 254}
MAX_TAG = 50


class ImportRefused(Exception):
    """The import as a whole cannot run (bad file, bad mapping); the message says why."""


def check_mapping(mapping: Any) -> dict[str, str]:
    """The mapping as {file column: contact field or ""}; raises DRF ValidationError."""
    if not isinstance(mapping, dict):
        raise serializers.ValidationError('The mapping is a JSON object: {"File column": "field"}.')
    checked: dict[str, str] = {}
    targets: dict[str, str] = {}
    for column, target in mapping.items():
        target = target or ""
        if not isinstance(column, str) or not isinstance(target, str) or "\x00" in column:
            raise serializers.ValidationError("Mapping columns and fields are strings.")
        if target and target not in FIELDS and not _is_custom(target):
            raise serializers.ValidationError(
                f"{column!r} → {target!r}: the field must be one of {', '.join(FIELDS)}, "
                f"or {CUSTOM_PREFIX}<key>, or empty to ignore the column."
            )
        if target and target in targets:
            raise serializers.ValidationError(
                f"{targets[target]!r} and {column!r} both map to {target!r}."
            )
        targets[target] = column
        checked[column] = target
    return checked


def _is_custom(target: str) -> bool:
    return target.startswith(CUSTOM_PREFIX) and len(target) > len(CUSTOM_PREFIX)


# --- Reading rows -------------------------------------------------------------------------------


def match_columns(headers: list[str], mapping: dict[str, str]) -> dict[int, str]:
    """Column index → contact field: the mapping first, then headers recognised by name."""
    lowered = {header.casefold(): index for index, header in enumerate(headers)}
    missing = [column for column in mapping if column.casefold() not in lowered]
    if missing:
        raise ImportRefused(
            f"The mapping names column(s) the file does not have: {', '.join(missing)}. "
            f"Its columns are: {_listing(headers)}."
        )
    columns: dict[int, str] = {}
    mapped = {lowered[column.casefold()]: target for column, target in mapping.items()}
    taken = {target for target in mapped.values() if target}
    for index, header in enumerate(headers):
        if index in mapped:
            target = mapped[index]
        else:
            target = _recognise(header)
            # A field the mapping gives a column keeps only that column.
            if target in taken and target in REPEATABLE and target not in mapped.values():
                target = f"{target}{ALTERNATE}{header}"
            elif target in taken:
                continue
            taken.add(target)
        if target:
            columns[index] = target
    if not set(REPEATABLE) & set(columns.values()):
        raise ImportRefused(
            "No column holds an email address or a phone number. Name one in the mapping, "
            f'e.g. {{"{headers[0]}": "email"}}. The columns are: {_listing(headers)}.'
        )
    return columns


def describe_target(target: str) -> str:
    """How a matched column is used, in words for the import's `columns` (the dry run's too)."""
    field_name, _, header = target.partition(ALTERNATE)
    if not header:
        return target
    return f"{field_name} if the earlier ones are empty, else {CUSTOM_PREFIX}{header}"


def _listing(headers: list[str]) -> str:
    return ", ".join(header for header in headers if header)


def _recognise(header: str) -> str:
    if header.casefold().startswith(CUSTOM_PREFIX) and len(header) > len(CUSTOM_PREFIX):
        return CUSTOM_PREFIX + header[len(CUSTOM_PREFIX) :]
    key = "".join(c for c in header.casefold() if c.isalnum())
    if key in HEADER_ALIASES:
        return HEADER_ALIASES[key]
    return next((target for pattern, target in HEADER_PATTERNS if pattern.match(key)), "")


@dataclass
class CleanRow:
    line: int
    raw: list[Any]
    fields: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def clean_row(line: int, values: list[Any], columns: dict[int, str], *, region: str) -> CleanRow:
    """The row's contact fields, normalised, or the reasons it cannot be imported."""
    row = CleanRow(line, values)
    if is_not_an_object(values):
        row.errors.append(f"Not a JSON object: {values[0]}.")
        return row
    given = [(target, values[index]) for index, target in columns.items() if index < len(values)]
    for target, value in _alternates(given):
        try:
            _clean_field(row.fields, target, value, region=region)
        except ValidationError as error:
            row.errors.extend(error.messages)
    _join_name(row.fields)
    if not row.errors and not (row.fields.get("email") or row.fields.get("phone")):
        row.errors.append("Either an email address or a phone number is required.")
    return row


def _alternates(given: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Each repeated email/phone column: the contact's when the earlier ones are empty, else a
    custom field named by its header."""
    filled: set[str] = set()
    targets = []
    for target, value in given:
        field_name, _, header = target.partition(ALTERNATE)
        if field_name in REPEATABLE and text_value(value):
            if field_name in filled:
                target = f"{CUSTOM_PREFIX}{header or field_name}"
            else:
                target = field_name
                filled.add(field_name)
        elif header:
            continue
        targets.append((target, value))
    return targets


def text_value(value: Any) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value).strip()


def _clean_field(fields: dict[str, Any], target: str, value: Any, *, region: str) -> None:
    if target == "tags":
        fields["tags"] = _clean_tags(value)
    elif target == "opted_out":
        fields["opted_out"] = _clean_flag(value)
    elif target == "email":
        fields["email"] = _clean_email(text_value(value))
    elif target == "phone":
        fields["phone"] = normalize_phone(text_value(value), region=region)
    elif target == "custom_fields":
        fields.setdefault("custom_fields", {}).update(_clean_custom(text_value(value)))
    elif target.startswith(CUSTOM_PREFIX):
        if text := text_value(value):
            fields.setdefault("custom_fields", {})[target[len(CUSTOM_PREFIX) :]] = text
    else:
        text = text_value(value)
        if target in MAX_LENGTHS and len(text) > MAX_LENGTHS[target]:
            raise ValidationError(f"{target}: longer than {MAX_LENGTHS[target]} characters.")
        fields[target] = text


def _clean_email(text: str) -> str:
    if len(text) > MAX_LENGTHS["email"]:
        raise ValidationError(f"email: longer than {MAX_LENGTHS['email']} characters.")
    try:
        return normalize_email(text)
    except ValidationError:
        raise ValidationError(f"email: {text!r} is not a valid email address.") from None


def _clean_tags(value: Any) -> list[str]:
    """Tags from a list, or a text split on ",", ";" or Google's " ::: "; quotes (Mailchimp)
    and Google's "* " marks are dropped, and so are its own groups (myContacts, starred)."""
    items = value if isinstance(value, list) else re.split(r":::|[,;]", str(value))
    cleaned = (str(tag).strip().strip('"').strip().removeprefix("* ").strip() for tag in items)
    tags = list(dict.fromkeys(t for t in cleaned if t and t.casefold() not in SYSTEM_LABELS))
    long = [tag for tag in tags if len(tag) > MAX_TAG]
    if long:
        raise ValidationError(f"tags: {long[0][:60]!r} is longer than {MAX_TAG} characters.")
    return tags


def _clean_flag(value: Any) -> bool:
    word = text_value(value).casefold()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValidationError(f"opted_out: {word!r} is not yes/no or true/false.")


def _clean_custom(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ValidationError("custom_fields: not a JSON object.")
    return value


def _join_name(fields: dict[str, Any]) -> None:
    first, last = fields.pop("first_name", ""), fields.pop("last_name", "")
    if not fields.get("name") and (first or last):
        fields["name"] = f"{first} {last}".strip()[: MAX_LENGTHS["name"]]


# --- Planning -----------------------------------------------------------------------------------


@dataclass(eq=False)
class Draft:
    """A contact as this import leaves it: one found in the database or one it creates."""

    contact_id: int | None
    name: str = ""
    email: str = ""
    phone: str = ""
    company: str = ""
    tags: list[str] = field(default_factory=list)
    opted_out: bool = False
    custom_fields: dict[str, Any] = field(default_factory=dict)
    line: int = 0  # where the file first named it (0: found in the database)
    raw: list[Any] = field(default_factory=list)  # the file's values it was last given

    def merge(self, fields: dict[str, Any]) -> bool:
        """Apply a row's non-empty values; tags are added, opting out is never undone."""
        before = self.values()
        for name in ("name", "email", "phone", "company"):
            if fields.get(name):
                setattr(self, name, fields[name])
        self.tags = self.tags + [tag for tag in fields.get("tags", []) if tag not in self.tags]
        self.opted_out = self.opted_out or bool(fields.get("opted_out"))
        self.custom_fields = {**self.custom_fields, **fields.get("custom_fields", {})}
        return self.values() != before

    def values(self) -> tuple[Any, ...]:
        return (
            self.name,
            self.email,
            self.phone,
            self.company,
            self.tags,
            self.opted_out,
            self.custom_fields,
        )

    def describe(self) -> str:
        return f"line {self.line}" if self.line else f"contact {self.contact_id}"


@dataclass
class BatchPlan:
    creates: list[Draft] = field(default_factory=list)
    updates: list[Draft] = field(default_factory=list)
    rejected: list[CleanRow] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: {"new": 0, "updated": 0, "skipped": 0, "invalid": 0}
    )


class Planner:
    """Decides each row's outcome; remembers every contact seen by email and by phone."""

    def __init__(self, *, tenant: Tenant, policy: str) -> None:
        self.tenant = tenant
        self.update = policy == ContactImport.Policy.UPDATE
        self.by_email: dict[str, Draft] = {}
        self.by_phone: dict[str, Draft] = {}
        self.loaded: set[int] = set()

    def plan(self, rows: list[CleanRow]) -> BatchPlan:
        self._load_existing(rows)
        plan = BatchPlan()
        dirty: dict[int, Draft] = {}
        for row in rows:
            outcome = self._decide(row, plan, dirty)
            plan.counts[outcome] += 1
        created = {id(draft) for draft in plan.creates}
        plan.updates = [draft for draft in dirty.values() if id(draft) not in created]
        return plan

    def _decide(self, row: CleanRow, plan: BatchPlan, dirty: dict[int, Draft]) -> str:
        if row.errors:
            plan.rejected.append(row)
            return "invalid"
        email, phone = row.fields.get("email", ""), row.fields.get("phone", "")
        by_email = self.by_email.get(email) if email else None
        by_phone = self.by_phone.get(phone) if phone else None
        target = by_email or by_phone
        if target is None:
            draft = Draft(contact_id=None, line=row.line, raw=row.raw)
            draft.merge(row.fields)
            plan.creates.append(draft)
            self._remember(draft)
            return "new"
        if not self.update:
            return "skipped"
        if by_email and by_phone and by_email is not by_phone:
            row.errors.append(
                f"The email matches {by_email.describe()} but the phone matches "
                f"{by_phone.describe()}: they are different contacts."
            )
            plan.rejected.append(row)
            return "invalid"
        if not target.merge(row.fields):
            return "skipped"
        target.raw = row.raw
        self._remember(target)
        dirty[id(target)] = target
        return "updated"

    def _remember(self, draft: Draft) -> None:
        if draft.email:
            self.by_email.setdefault(draft.email, draft)
        if draft.phone:
            self.by_phone.setdefault(draft.phone, draft)

    def _load_existing(self, rows: list[CleanRow]) -> None:
        """Read the tenant's contacts this batch names that no earlier row has seen."""
        emails = {r.fields["email"] for r in rows if r.fields.get("email")} - self.by_email.keys()
        phones = {r.fields["phone"] for r in rows if r.fields.get("phone")} - self.by_phone.keys()
        if not emails and not phones:
            return
        with connection.cursor() as cursor:
            params: dict[str, Any] = {
                "tenant": self.tenant.pk,
                "emails": list(emails),
                "phones": list(phones),
            }
            cursor.execute(_EXISTING_SQL, params)
            for pk, name, email, phone, company, tags, opted_out, custom in cursor.fetchall():
                if pk in self.loaded:
                    continue  # found by both its email and its phone
                self.loaded.add(pk)
                draft = Draft(pk, name, email, phone, company, list(tags), opted_out)
                draft.custom_fields = json.loads(custom) if isinstance(custom, str) else custom
                self._remember(draft)


# One statement with two array parameters, however many rows the batch has. Each value is a
# probe of the unique index on (tenant, email) or (tenant, phone) (LIMIT 1 keeps the lateral
# subquery a per-value index scan): a plan that stays fast while a fresh tenant's contacts grow
# faster than PostgreSQL's statistics follow them.
_COLUMNS = "c.id, c.name, c.email, c.phone, c.company, c.tags, c.opted_out, c.custom_fields"
_EXISTING_SQL = f"""
SELECT {_COLUMNS} FROM unnest(%(emails)s::text[]) AS k(value) CROSS JOIN LATERAL (
    SELECT * FROM "{Contact._meta.db_table}"
    WHERE tenant_id = %(tenant)s AND email = k.value AND email <> '' LIMIT 1
) AS c
UNION ALL
SELECT {_COLUMNS} FROM unnest(%(phones)s::text[]) AS k(value) CROSS JOIN LATERAL (
    SELECT * FROM "{Contact._meta.db_table}"
    WHERE tenant_id = %(tenant)s AND phone = k.value AND phone <> '' LIMIT 1
) AS c
"""
