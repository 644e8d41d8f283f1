"""Shared fixtures: a clean test Redis around each test, and in-process RQ workers."""

from collections.abc import Iterator

import django_rq
import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tenants.models import Role, Tenant
from tests.factories import TenantFactory, make_member
from tests.servers import private_postgres  # noqa: F401 (fixtures)
from tests.workers import run_worker, work_until, worker_process  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    connection = django_rq.get_connection("default")  # test settings point at a spare database
    connection.flushdb()
    yield
    connection.flushdb()


@pytest.fixture
def tenant() -> Tenant:
    return TenantFactory.create(name="Acme", slug="acme")


@pytest.fixture
def other_tenant() -> Tenant:
    return TenantFactory.create(name="Globex", slug="globex")


@pytest.fixture
def tenant_owner(tenant: Tenant) -> User:
    """Owner of `tenant`, and staff so that the admin lets them in."""
    return make_member(tenant, Role.OWNER, username="olivia-owner", is_staff=True)


@pytest.fixture
def tenant_admin(tenant: Tenant) -> User:
    """Admin of `tenant`, and staff so that the admin lets them in."""
    return make_member(tenant, Role.ADMIN, username="adam-admin", is_staff=True)


@pytest.fixture
def agent(tenant: Tenant) -> User:
    return make_member(tenant, Role.AGENT, username="agnes-agent")


@pytest.fixture
def viewer(tenant: Tenant) -> User:
    return make_member(tenant, Role.VIEWER, username="victor-viewer")


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()
