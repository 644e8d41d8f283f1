"""Redaction as an attacker tries it: searching for a secret, reading a form, reading the API."""

import html
import re
import uuid
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from communications.models import Campaign, Contact, WebhookDelivery, WebhookEndpoint
from jobs.models import Job
from jobs.redaction import REDACTED, trim_traceback
from jobs.services.schedules import create_schedule
from tenants.models import Role, Tenant
from tests.factories import make_member

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/conveyor/releases/42/jobs/tasks.py", line 50, in fail\n'
    "    raise PermanentError(message)\n"
    "jobs.errors.PermanentError: no"
)


def staff(tenant: Tenant, role: str) -> Client:
    client = Client()
    client.force_login(make_member(tenant, role, username=f"staff-{role}", is_staff=True))
    return client


def api(user: Any, tenant: Tenant) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    client.credentials(HTTP_X_TENANT=tenant.slug)
    return client


@pytest.mark.parametrize(
    "term", ["password=hunter2", "hunter2", "hunt", 'auth={"password": "hunter2"}']
)
def test_the_admin_job_search_never_matches_a_redacted_value(tenant, term):
    Job.objects.create(
        tenant=tenant,
        kind="jobs.noop",
        queue="default",
        timeout=60,
        payload={"n": 7, "password": "hunter2", "auth": {"password": "hunter2"}},
    )
    client = staff(tenant, Role.VIEWER)
    changelist = reverse("admin:jobs_job_changelist")

    guessed = client.get(changelist, {"q": term}).context["cl"].result_list
    plain = client.get(changelist, {"q": "n=7"}).context["cl"].result_list

    assert list(guessed) == []
    assert len(plain) == 1


def test_the_schedule_form_shows_secrets_masked_and_keeps_them_on_save(tenant):
    schedule = create_schedule(
        tenant=tenant,
        name="nightly",
        kind="jobs.noop",
        cron="@daily",
        payload={"api_key": "sk_live_1", "n": 1},
    )
    client = staff(tenant, Role.ADMIN)
    change = reverse("admin:jobs_schedule_change", args=[schedule.pk])

    page = client.get(change).content.decode()
    form = page_form(page)
    form["name"] = "renamed"
    saved = client.post(change, form)

    schedule.refresh_from_db()
    assert "sk_live_1" not in page
    assert REDACTED in page
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert schedule.name == "renamed"
    assert schedule.payload == {"api_key": "sk_live_1", "n": 1}


def page_form(page: str) -> dict[str, Any]:
    """The change form's fields as the browser would post them back."""
    data: dict[str, Any] = {}
    for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page):
        data.setdefault(name, html.unescape(value))
    for name, body in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S):
        data[name] = html.unescape(body).strip()
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.findall(r'<option value="([^"]*)"[^>]*selected', options)
        data[name] = html.unescape(chosen[0]) if chosen else ""
    for name in re.findall(r'<input type="checkbox" name="([^"]+)"[^>]*checked', page):
        data[name] = "on"
    data.pop("csrfmiddlewaretoken", None)
    return data


def test_custom_fields_variables_and_event_bodies_are_redacted_in_the_api(tenant, viewer):
    contact = Contact.objects.create(
        tenant=tenant, email="a@example.com", custom_fields={"crm_token": "t0k", "plan": "pro"}
    )
    campaign = Campaign.objects.create(
        tenant=tenant,
        name="spring",
        channel="email",
        template="welcome",
        variables={"password": "p4ss", "city": "Oslo"},
    )
    admin_user = make_member(tenant, Role.ADMIN, username="wendy-admin")
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant, url="https://hooks.example.com/", secret="s"
    )
    delivery = WebhookDelivery.objects.create(
        tenant=tenant,
        endpoint=endpoint,
        event_id=uuid.uuid4(),
        event_type="contact.created",
        payload={"data": {"custom_fields": {"secret": "shh"}, "email": "a@example.com"}},
    )

    contact_body = api(viewer, tenant).get(f"/api/v1/contacts/{contact.pk}/").json()
    campaign_body = api(viewer, tenant).get(f"/api/v1/campaigns/{campaign.pk}/").json()
    delivery_body = (
        api(admin_user, tenant).get(f"/api/v1/webhooks/deliveries/{delivery.pk}/").json()
    )

    assert contact_body["custom_fields"] == {"crm_token": REDACTED, "plan": "pro"}
    assert campaign_body["variables"] == {"password": REDACTED, "city": "Oslo"}
    assert delivery_body["payload"]["data"]["custom_fields"] == {"secret": REDACTED}
    assert delivery_body["payload"]["data"]["email"] == "a@example.com"


def test_a_tenant_reads_tracebacks_without_server_paths_and_an_operator_whole(
    tenant, viewer, admin_user
):
    job = Job.objects.create(
        tenant=tenant,
        kind="jobs.fail",
        queue="default",
        timeout=60,
        status=Job.Status.FAILED,
        error_traceback=TRACEBACK,
    )

    as_member = api(viewer, tenant).get(f"/api/v1/jobs/{job.pk}/").json()
    as_operator = api(admin_user, tenant).get(f"/api/v1/jobs/{job.pk}/").json()

    assert "/srv/conveyor" not in as_member["error_traceback"]
    assert 'File "tasks.py", line 50' in as_member["error_traceback"]
    assert as_operator["error_traceback"] == TRACEBACK
    assert trim_traceback(TRACEBACK) == as_member["error_traceback"]
