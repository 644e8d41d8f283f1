"""Writes: tenants, their members and roles, API keys, and the demo set-up."""

import logging
import secrets
import string
from dataclasses import dataclass
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from tenants.models import ApiKey, Membership, Role, Tenant
from tenants.selectors import get_role
from tenants.signals import member_added
from tenants.users import Actor, acting_user

logger = logging.getLogger(__name__)

# Letters and digits only: the raw key is split on "_", so the lookup must not contain one.
LOOKUP_ALPHABET = string.ascii_letters + string.digits
LOOKUP_LENGTH = 12

DEMO_SLUG = "demo"
DEMO_NAME = "Demo Company"
DEMO_USERNAME = "admin"
DEMO_KEY_NAME = "demo"


@dataclass(frozen=True)
class DemoSetup:
    tenant: Tenant
    user: User
    raw_key: str


@transaction.atomic
def create_tenant(*, name: str, slug: str, owner: User | None = None) -> Tenant:
    """Create an active tenant; `owner`, when given, becomes its owner."""
    tenant = Tenant(name=name, slug=slug)
    tenant.full_clean(validate_unique=False)
    if Tenant.objects.filter(slug=slug).exists():
        raise _slug_taken(slug)
    try:
        with transaction.atomic():
            tenant.save()
    except IntegrityError as error:  # created concurrently since the check above
        raise _slug_taken(slug) from error
    logger.info("Created tenant %s (tenant=%s)", tenant.slug, tenant.pk)
    if owner is not None:
        add_member(tenant, user=owner, role=Role.OWNER)
    return tenant


def _slug_taken(slug: str) -> ValidationError:
    return ValidationError({"slug": f"A tenant with the slug {slug!r} already exists."})


@transaction.atomic
def add_member(tenant: Tenant, *, user: User, role: str = Role.VIEWER) -> Membership:
    """Make `user` a member of `tenant` with `role`; an existing member is refused."""
    _check_role(role)
    if Membership.objects.for_tenant(tenant).filter(user=user).exists():
        raise _already_member(user, tenant)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    except IntegrityError as error:  # added concurrently since the check above
        raise _already_member(user, tenant) from error
    logger.info("Added %s as %s (tenant=%s)", user, role, tenant.pk)
    member_added.send(sender=Membership, membership=membership)
    return membership


def _already_member(user: User, tenant: Tenant) -> ValidationError:
    return ValidationError({"user": f"{user} is already a member of {tenant.slug}."})


def set_role(membership: Membership, *, role: str) -> Membership:
    """Change the member's role."""
    _check_role(role)
    membership.role = role
    membership.save(update_fields=["role"])
    logger.info("Set %s's role to %s (tenant=%s)", membership.user, role, membership.tenant_id)
    return membership


def remove_member(membership: Membership) -> None:
    """End the membership; the user keeps their account and their other tenants."""
    logger.info("Removed %s (tenant=%s)", membership.user, membership.tenant_id)
    membership.delete()


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise ValidationError({"role": f"{role!r} is not a role: use one of {Role.values}."})


def create_api_key(*, user: User, name: str, tenant: Tenant | None = None) -> tuple[ApiKey, str]:
    """Create a key acting as `user` (only in `tenant` when given); the raw key is returned once."""
    if tenant is not None and get_role(user, tenant) is None:
        raise ValidationError(
            {"tenant": f"{user} is not a member of {tenant.slug}, so cannot hold a key for it."}
        )
    lookup = "".join(secrets.choice(LOOKUP_ALPHABET) for _ in range(LOOKUP_LENGTH))
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        user=user, tenant=tenant, name=name, lookup=lookup, digest=ApiKey.hash_secret(secret)
    )
    key.full_clean()
    key.save()
    logger.info("Created API key %s for %s (tenant=%s)", key.pk, user, key.tenant_id)
    return key, f"{ApiKey.PREFIX}_{lookup}_{secret}"


def rename_api_key(key: ApiKey, *, name: str) -> ApiKey:
    """Change what the key is called; nothing else about it changes."""
    key.name = name
    key.full_clean(exclude=["user", "tenant", "lookup", "digest"])
    key.save(update_fields=["name"])  # never a full save: it could undo a concurrent revocation
    return key


def revoke_api_key(key: ApiKey) -> ApiKey:
    """Stop the key from authenticating; revoking a revoked key changes nothing."""
    now = timezone.now()
    if ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now):
        logger.info("Revoked API key %s (tenant=%s)", key.pk, key.tenant_id)
    key.refresh_from_db(fields=["revoked_at"])
    return key


@transaction.atomic
def set_up_demo(*, password: str) -> DemoSetup:
    """Make (or repair) the demo tenant, its owner superuser `admin` and a fresh "demo" key."""
    tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
    if tenant is None:
        tenant = create_tenant(name=DEMO_NAME, slug=DEMO_SLUG)
    elif not tenant.is_active:
        tenant.is_active = True
        tenant.save(update_fields=["is_active"])
    user = _demo_superuser(password)
    membership = Membership.objects.for_tenant(tenant).filter(user=user).first()
    if membership is None:
        add_member(tenant, user=user, role=Role.OWNER)
    elif membership.role != Role.OWNER:
        set_role(membership, role=Role.OWNER)
    for old_key in ApiKey.objects.filter(user=user, name=DEMO_KEY_NAME, revoked_at__isnull=True):
        revoke_api_key(old_key)
    _key, raw_key = create_api_key(user=user, name=DEMO_KEY_NAME, tenant=tenant)
    return DemoSetup(tenant=tenant, user=user, raw_key=raw_key)


def _demo_superuser(password: str) -> User:
    user = User.objects.filter(username=DEMO_USERNAME).first()
    if user is None:
        return User.objects.create_superuser(DEMO_USERNAME, "admin@example.com", password)
    user.is_active = user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save(update_fields=["is_active", "is_staff", "is_superuser", "password"])
    return user


# Dispatch controls: what operators (superusers) change about how a tenant's jobs are taken.
DISPATCH_FIELDS = ("weight", "paused_queues", "backlog_caps", "rate_limits", "concurrency_limits")


def set_dispatch(tenant: Tenant, *, by: Actor = None, **changes: Any) -> list[str]:
    """Change a tenant's weight, paused queues, backlog caps, or rate and concurrency overrides.

    Validated as the admin validates them (a ValidationError names the field); saved, mirrored
    into Redis by the jobs app (workers see it at their next take; limits within a worker's
    30 s tenant cache), and written to the admin log. Returns the fields that changed.
    """
    described = _change(
        tenant, DISPATCH_FIELDS, changes, by=by, what="Dispatch", refused="Not a dispatch setting."
    )
    if not described:
        return []
    logger.info("tenant=%s dispatch changed by %s: %s", tenant.slug, by, described)
    return list(described)


def pause_tenant(tenant: Tenant, *, queue: str = "*", by: Actor = None) -> list[str]:
    """Hold the tenant's jobs on `queue` ("*": every queue) without running them."""
    paused = [name for name in tenant.paused_queues if name != queue] + [queue]
    return set_dispatch(tenant, by=by, paused_queues=paused)


def resume_tenant(tenant: Tenant, *, queue: str = "*", by: Actor = None) -> list[str]:
    """Let the tenant's jobs on `queue` run again ("*": lift every pause)."""
    paused = [] if queue == "*" else [name for name in tenant.paused_queues if name != queue]
    return set_dispatch(tenant, by=by, paused_queues=paused)


def log_operator_change(tenant: Tenant, *, by: Actor, message: str) -> None:
    """An entry in the admin log (Django's LogEntry) for a change made outside the admin."""
    user = acting_user(by)
    if user is None:
        return
    LogEntry.objects.log_actions(
        user_id=user.pk,
        queryset=[tenant],
        action_flag=CHANGE,
        change_message=message,
        single_object=True,
    )


# --- A tenant's own settings and members, as its owners manage them ---------------------------

SETTINGS_FIELDS = (
    "queue_defaults",
    "retention_days",
    "time_zone",
    "default_region",
    "contact_created_notify",
)


def update_settings(tenant: Tenant, *, by: Actor = None, **changes: Any) -> list[str]:
    """Change what a tenant's owners may change of it (not its dispatch: operators do that).

    Validated as the admin validates them (a ValidationError names the field), saved and
    written to the admin log. Returns the fields that changed.
    """
    return list(
        _change(
            tenant,
            SETTINGS_FIELDS,
            changes,
            by=by,
            what="Settings",
            refused="Not a setting owners change.",
        )
    )


def _change(
    tenant: Tenant,
    allowed: tuple[str, ...],
    changes: dict[str, Any],
    *,
    by: Actor,
    what: str,
    refused: str,
) -> dict[str, str]:
    """Set the `allowed` fields that differ, validated as the admin validates them (a
    ValidationError names the field; nothing is kept on error), save them and write the change
    to the admin log. Returns each changed field with how it changed."""
    unknown = set(changes) - set(allowed)
    if unknown:
        raise ValidationError({name: refused for name in sorted(unknown)})
    changed = [name for name, value in changes.items() if getattr(tenant, name) != value]
    if not changed:
        return {}
    before = {name: getattr(tenant, name) for name in changed}
    for name in changed:
        setattr(tenant, name, changes[name])
    try:
        tenant.full_clean(exclude=[f.name for f in Tenant._meta.fields if f.name not in changed])
    except ValidationError:
        for name, value in before.items():
            setattr(tenant, name, value)
        raise
    tenant.save(update_fields=changed)
    described = {name: f"{before[name]!r} → {changes[name]!r}" for name in changed}
    summary = "; ".join(f"{name}: {how}" for name, how in described.items())
    log_operator_change(tenant, by=by, message=f"{what} changed: {summary}.")
    return described


def keep_an_owner(membership: Membership, *, role: str | None) -> None:
    """Refuse to demote (`role`) or remove (None) the tenant's last owner."""
    if membership.role != Role.OWNER or role == Role.OWNER:
        return
    owners = Membership.objects.for_tenant(membership.tenant).filter(role=Role.OWNER)
    if not owners.exclude(pk=membership.pk).exists():
        raise ValidationError({"role": "A tenant keeps at least one owner: name another first."})
