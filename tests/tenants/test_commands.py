import re
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from tenants.authentication import ApiKeyAuthentication
from tenants.models import ApiKey, Membership, Role, Tenant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def printed_key(output: str) -> str:
    match = re.search(r"API key:\s+(\S+)", output)
    assert match, output
    return match.group(1)


def test_create_tenant_makes_the_tenant_and_its_owner():
    UserFactory.create(username="olivia")

    output = run("create_tenant", "acme", "--name", "Acme Ltd", "--owner", "olivia")

    assert "Created tenant acme (Acme Ltd), owned by olivia." in output
    membership = Membership.objects.get(tenant__slug="acme")
    assert (membership.user.username, membership.role) == ("olivia", Role.OWNER)


def test_create_tenant_refuses_a_taken_slug(tenant):
    with pytest.raises(CommandError, match=r"A tenant with the slug 'acme' already exists\."):
        run("create_tenant", "acme", "--name", "Acme again")


def test_create_tenant_refuses_an_invalid_slug():
    with pytest.raises(CommandError, match="slug"):
        run("create_tenant", "not a slug", "--name", "Acme")

    assert not Tenant.objects.exists()


def test_create_tenant_refuses_an_unknown_owner():
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run("create_tenant", "acme", "--name", "Acme", "--owner", "nobody")

    assert not Tenant.objects.exists()


def test_create_tenant_needs_a_name():
    with pytest.raises(CommandError, match="--name"):
        run("create_tenant", "acme")


def test_create_api_token_prints_a_working_key_bound_to_the_tenant(tenant, agent):
    output = run("create_api_token", "--user", "agnes-agent", "--tenant", "acme", "--name", "shop")

    user, key = ApiKeyAuthentication()._check(output.strip())
    assert (user, key.tenant, key.name) == (agent, tenant, "shop")


def test_create_api_token_refuses_a_tenant_the_user_is_not_in(other_tenant, agent):
    with pytest.raises(CommandError, match="not a member of globex"):
        run("create_api_token", "--user", "agnes-agent", "--tenant", "globex")

    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody"], "No user named 'nobody'"),
        (["--user", "agnes-agent", "--tenant", "nowhere"], "No tenant 'nowhere'"),
    ],
)
def test_create_api_token_refuses_unknown_names(agent, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_api_token", *args)


def test_setup_demo_prints_the_admin_url_login_password_and_a_working_key(monkeypatch, api_client):
    monkeypatch.setenv("DEMO_PASSWORD", "let-me-in")
    monkeypatch.setenv("CONVEYOR_BASE_URL", "https://conveyor.example/")

    output = run("setup_demo")

    assert "https://conveyor.example/admin/" in output
    assert re.search(r"Login:\s+admin\n", output)
    assert re.search(r"Password:\s+let-me-in\n", output)
    raw_key = printed_key(output)
    me = api_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert (me.status_code, me.json()["tenant"], me.json()["role"]) == (200, "demo", "owner")
    assert User.objects.get(username="admin").check_password("let-me-in")


def test_setup_demo_run_twice_resets_the_password_and_replaces_the_key(monkeypatch, api_client):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    first = run("setup_demo")
    User.objects.filter(username="admin").update(password="")

    second = run("setup_demo")

    old_key = printed_key(first)
    new_key = printed_key(second)
    assert "http://127.0.0.1:8000/admin/" in second
    assert User.objects.get(username="admin").check_password("conveyor-demo")
    assert Tenant.objects.get(slug="demo").name == "Demo Company"
    old = api_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {old_key}")
    new = api_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {new_key}")
    assert (old.status_code, new.status_code) == (401, 200)
