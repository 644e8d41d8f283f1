"""Factories for the models tests build on; API keys come from the real service."""

import factory
from django.contrib.auth.models import User
from factory.django import DjangoModelFactory, Password

from tenants.models import ApiKey, Membership, Role, Tenant
from tenants.services import create_api_key

PASSWORD = "correct-horse-battery"


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = Password(PASSWORD)


class TenantFactory(DjangoModelFactory[Tenant]):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")


class MembershipFactory(DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Role.VIEWER


def make_member(tenant: Tenant, role: str = Role.VIEWER, **user_fields: object) -> User:
    """A new user with `role` in `tenant`."""
    user = UserFactory.create(**user_fields)
    MembershipFactory.create(user=user, tenant=tenant, role=role)
    return user


def make_api_key(
    user: User, *, tenant: Tenant | None = None, name: str = "test"
) -> tuple[ApiKey, str]:
    """An API key made by the real service: (the key row, the raw key to send)."""
    return create_api_key(user=user, name=name, tenant=tenant)
