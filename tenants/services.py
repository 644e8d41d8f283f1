"""Writes: tenants, their members and roles, API keys, and the demo set-up."""

import logging
import secrets
import string
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from tenants.models import ApiKey, Membership, Role, Tenant
from tenants.selectors import get_role
from tenants.signals import member_added

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
