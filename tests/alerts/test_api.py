"""The alerts API: rules for superusers, incidents for operators and each tenant's admins,
the digest opt-in for any member, and the stored health history."""

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.models import AlertRule, Condition, DigestSubscription, Incident
from alerts.services.rules import create_rule
from jobs.models import HealthCheck
from jobs.services.health import delete_old_health_checks, record_health_check
from tenants.models import Role, Tenant
from tests.factories import make_member

pytestmark = pytest.mark.django_db

RULES = "/api/v1/alerts/rules/"
INCIDENTS = "/api/v1/alerts/incidents/"
DIGEST = "/api/v1/alerts/digest/"
HISTORY = "/api/v1/health/history/"


def client_for(user: User, tenant: Tenant | None = None) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    if tenant is not None:
        client.credentials(HTTP_X_TENANT=tenant.slug)
    return client


def open_incident(rule: AlertRule) -> Incident:
    now = timezone.now()
    return Incident.objects.create(
        rule=rule, tenant=rule.tenant, summary="It happened.", opened_at=now, last_seen_at=now
    )


def test_a_superuser_creates_a_tenant_rule_with_recipients(operator, tenant, tenant_admin):
    body: dict[str, Any] = {
        "tenant": "acme",
        "name": "Acme failing",
        "condition": "failure_rate",
        "threshold": 0.2,
        "escalate_after_minutes": 15,
        "recipients": [{"level": 1, "channel": "email", "user": tenant_admin.pk}],
    }

    created = client_for(operator).post(RULES, body, format="json")

    assert created.status_code == 201, created.json()
    rule = AlertRule.objects.get(pk=created.json()["id"])
    assert (rule.tenant, rule.created_by, rule.threshold) == (tenant, operator, 0.2)
    assert created.json()["recipients"] == [
        {"level": 1, "channel": "email", "user": tenant_admin.pk, "url": ""}
    ]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"condition": "component_down"}, "condition", "its own jobs only"),
        ({"condition": "failure_rate", "threshold": 2}, "threshold", "between 0 and 1"),
        ({"condition": "no_such"}, "condition", "not a valid choice"),
        ({"condition": "dead_letters", "queue": "nope"}, "queue", "no queue 'nope'"),
        (
            {"condition": "dead_letters", "recipients": [{"channel": "email", "user": 0}]},
            "recipients",
            "",
        ),
    ],
)
def test_a_bad_rule_is_refused_with_the_field_that_is_wrong(operator, tenant, body, field, message):
    answer = client_for(operator).post(
        RULES, {"tenant": "acme", "name": "Bad", **body}, format="json"
    )

    assert answer.status_code == 400
    assert field in answer.json()
    assert message in json_text(answer.json()[field])


def test_a_tenant_slug_holding_nul_in_a_form_is_no_tenant(operator, tenant):
    form = {"tenant": "ac\x00me", "name": "Bad", "condition": "dead_letters"}

    answer = client_for(operator).post(RULES, form, format="multipart")

    assert answer.status_code == 400
    assert "does not exist" in json_text(answer.json()["tenant"])


def json_text(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def test_a_tenant_rule_may_not_tell_someone_outside_the_tenant(operator, tenant, other_tenant):
    outsider = make_member(other_tenant, Role.ADMIN, username="outsider")

    answer = client_for(operator).post(
        RULES,
        {
            "tenant": "acme",
            "name": "Acme",
            "condition": "dead_letters",
            "recipients": [{"level": 0, "channel": "in_app", "user": outsider.pk}],
        },
        format="json",
    )

    assert answer.status_code == 400
    assert "Only members of the rule's tenant" in json_text(answer.json()["recipients"])


def test_rules_are_for_superusers_only(tenant, tenant_owner):
    as_owner = client_for(tenant_owner, tenant)

    assert as_owner.get(RULES).status_code == 403
    assert as_owner.post(RULES, {"name": "x", "condition": "dead_letters"}).status_code == 403


def test_a_superuser_edits_a_rule_and_may_not_delete_a_built_in_one(operator):
    rule = create_rule(tenant=None, name="Slow", condition=Condition.OLDEST_WAITING, threshold=60)
    built_in = AlertRule.objects.get(builtin="no_worker")
    api = client_for(operator)

    edited = api.patch(f"{RULES}{rule.pk}/", {"threshold": 120, "enabled": False}, format="json")
    refused = api.delete(f"{RULES}{built_in.pk}/")
    deleted = api.delete(f"{RULES}{rule.pk}/")

    assert (edited.status_code, edited.json()["threshold"], edited.json()["enabled"]) == (
        200,
        120,
        False,
    )
    assert refused.status_code == 409
    assert deleted.status_code == 204
    assert AlertRule.objects.filter(pk=built_in.pk).exists()


def test_tenant_admins_see_and_acknowledge_only_their_own_tenants_incidents(
    operator, tenant, other_tenant, tenant_admin, viewer
):
    ours = open_incident(create_rule(tenant=tenant, name="A", condition=Condition.DEAD_LETTERS))
    theirs = open_incident(
        create_rule(tenant=other_tenant, name="G", condition=Condition.DEAD_LETTERS)
    )
    platform = open_incident(AlertRule.objects.get(builtin="no_worker"))
    as_admin = client_for(tenant_admin, tenant)

    listed = as_admin.get(INCIDENTS).json()["results"]
    everything = client_for(operator).get(INCIDENTS).json()["results"]
    acked = as_admin.post(f"{INCIDENTS}{ours.pk}/acknowledge/")
    not_theirs = as_admin.post(f"{INCIDENTS}{theirs.pk}/acknowledge/")
    not_platform = as_admin.post(f"{INCIDENTS}{platform.pk}/acknowledge/")

    assert [i["id"] for i in listed] == [ours.pk]
    assert {i["id"] for i in everything} == {ours.pk, theirs.pk, platform.pk}
    assert acked.status_code == 200
    assert acked.json()["acknowledged_at"] is not None
    assert (not_theirs.status_code, not_platform.status_code) == (404, 404)
    assert client_for(viewer, tenant).get(INCIDENTS).status_code == 403


def test_a_member_opts_in_and_out_of_the_daily_digest(tenant, viewer):
    api = client_for(viewer, tenant)

    joined = api.put(DIGEST)
    again = api.put(DIGEST)
    subscribed = DigestSubscription.objects.filter(tenant=tenant, user=viewer).count()
    left = api.delete(DIGEST)

    assert (joined.json(), again.json(), left.json()) == (
        {"subscribed": True},
        {"subscribed": True},
        {"subscribed": False},
    )
    assert subscribed == 1
    assert not DigestSubscription.objects.exists()


def test_the_health_history_is_served_newest_first_and_filtered(operator, tenant, tenant_admin):
    older = record_health_check()
    HealthCheck.objects.filter(pk=older.pk).update(checked_at=timezone.now() - timedelta(hours=2))
    newer = record_health_check()

    everything = client_for(operator).get(HISTORY).json()
    recent = client_for(tenant_admin, tenant).get(
        HISTORY, {"since": (timezone.now() - timedelta(hours=1)).isoformat()}
    )
    backwards = client_for(operator).get(
        HISTORY, {"since": timezone.now().isoformat(), "until": "2020-01-01T00:00:00Z"}
    )

    newest_first = [datetime.fromisoformat(c["checked_at"]) for c in everything["results"]]
    assert newest_first == sorted(newest_first, reverse=True)
    assert newest_first[0] == newer.checked_at
    assert everything["count"] == 2
    assert set(everything["results"][0]["components"]) >= {"database", "redis", "queue:default"}
    assert [c["status"] for c in recent.json()["results"]] == [newer.status]
    assert backwards.status_code == 400
    assert "until" in backwards.json()


def test_checks_past_the_history_days_are_deleted(settings):
    settings.CONVEYOR_ALERTS = {**settings.CONVEYOR_ALERTS, "history_days": 1}
    old = record_health_check()
    HealthCheck.objects.filter(pk=old.pk).update(checked_at=timezone.now() - timedelta(days=2))

    kept = record_health_check()  # each check deletes what is past the retention

    assert list(HealthCheck.objects.values_list("pk", flat=True)) == [kept.pk]
    assert delete_old_health_checks() == 0
