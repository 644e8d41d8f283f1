"""The alerts admin: pages open, tenant staff see and edit only their tenants' rules, and
acknowledging or silencing an incident is an action written to the admin log."""

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertRule, Condition, Incident
from alerts.services.rules import create_rule

pytestmark = pytest.mark.django_db


def open_incident(rule: AlertRule) -> Incident:
    now = timezone.now()
    return Incident.objects.create(
        rule=rule, tenant=rule.tenant, summary="It happened.", opened_at=now, last_seen_at=now
    )


def test_every_alerts_page_opens_for_a_superuser(admin_client, tenant):
    rule = create_rule(tenant=tenant, name="Acme", condition=Condition.DEAD_LETTERS)
    incident = open_incident(rule)

    pages = [
        reverse("admin:alerts_alertrule_changelist"),
        reverse("admin:alerts_alertrule_add"),
        reverse("admin:alerts_alertrule_change", args=[rule.pk]),
        reverse("admin:alerts_incident_changelist"),
        reverse("admin:alerts_incident_change", args=[incident.pk]),
        reverse("admin:alerts_digestsubscription_changelist"),
        reverse("admin:alerts_digestsubscription_add"),
    ]

    assert [admin_client.get(page).status_code for page in pages] == [200] * len(pages)


def test_the_rule_list_runs_a_fixed_number_of_queries(
    admin_client, tenant, django_assert_num_queries
):
    for n in range(5):
        create_rule(tenant=tenant, name=f"Rule {n}", condition=Condition.DEAD_LETTERS)

    with django_assert_num_queries(6):
        admin_client.get(reverse("admin:alerts_alertrule_changelist"))


def test_a_tenant_admin_sees_only_their_tenants_rules_and_may_not_add_a_platform_rule(
    client: Client, tenant, other_tenant, tenant_admin
):
    ours = create_rule(tenant=tenant, name="Ours", condition=Condition.DEAD_LETTERS)
    create_rule(tenant=other_tenant, name="Theirs", condition=Condition.DEAD_LETTERS)
    client.force_login(tenant_admin)
    add = reverse("admin:alerts_alertrule_add")
    form = {
        "name": "Mine",
        "condition": "component_down",
        "threshold": "0",
        "window_minutes": "15",
        "min_jobs": "5",
        "cooldown_minutes": "10",
        "enabled": "on",
        "recipients-TOTAL_FORMS": "0",
        "recipients-INITIAL_FORMS": "0",
    }

    listed = client.get(reverse("admin:alerts_alertrule_changelist"))
    platform = client.post(add, form)
    wrong_condition = client.post(add, {**form, "tenant": tenant.pk})
    saved = client.post(add, {**form, "tenant": tenant.pk, "condition": "dead_letters"})

    assert [r.name for r in listed.context["cl"].result_list] == [ours.name]
    assert "This field is required" in platform.content.decode()
    assert "its own jobs only" in wrong_condition.content.decode()
    assert saved.status_code == 302
    assert AlertRule.objects.get(name="Mine").tenant == tenant


def test_acknowledging_and_silencing_are_logged_in_the_admin(admin_client, tenant):
    incident = open_incident(create_rule(tenant=tenant, name="A", condition=Condition.DEAD_LETTERS))
    changelist = reverse("admin:alerts_incident_changelist")

    admin_client.post(
        changelist, {"action": "acknowledge_selected", "_selected_action": [incident.pk]}
    )
    admin_client.post(changelist, {"action": "silence_hour", "_selected_action": [incident.pk]})

    incident.refresh_from_db()
    assert incident.acknowledged_at is not None
    assert incident.silenced_until is not None
    assert incident.silenced_until > timezone.now()
    messages = list(
        LogEntry.objects.filter(object_id=str(incident.pk))
        .order_by("pk")
        .values_list("change_message", flat=True)
    )
    assert messages[0] == "Acknowledged."
    assert messages[1].startswith("Silenced until ")
