"""Finding the users and tenants that commands name, with errors that say what is missing."""

from django.contrib.auth.models import User
from django.core.management.base import CommandError

from tenants.models import Tenant


def get_user(username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user named {username!r}: create it first (createsuperuser).")
    return user


def get_tenant(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"No tenant {slug!r}: create it first (create_tenant).")
    return tenant
