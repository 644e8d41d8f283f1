"""Batches as a whole: created with members and a callback through the API, followed by counts
and progress, canceled; the admin page of a batch."""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from jobs.models import Batch, Job
from jobs.services.jobs import create_batch, enqueue_jobs
from tests.workers import wait_for

BATCHES = "/api/v1/batches/"


@pytest.fixture
def as_agent(api_client: APIClient, agent: User) -> APIClient:
    api_client.force_authenticate(agent)
    return api_client


def _create(client: APIClient, **body):
    members = [{"kind": "jobs.noop", "payload": {"n": n}} for n in range(3)]
    return client.post(
        BATCHES,
        {"description": "three", "members": members, "callback_kind": "jobs.noop", **body},
        format="json",
    )


@pytest.mark.django_db(transaction=True)
def test_a_batch_made_through_the_api_runs_its_members_then_its_callback_once(
    as_agent, tenant, run_worker
):
    response = _create(as_agent, callback_payload={"note": "done"})

    assert response.status_code == 202
    body = response.json()
    assert (body["total"], body["progress"], body["counts"]) == (3, 0, {"queued": 3})
    assert [member["kind"] for member in body["members"]] == ["jobs.noop"] * 3
    batch = Batch.objects.get(pk=body["id"])

    run_worker(["default"])
    wait_for(lambda: Batch.objects.get(pk=batch.pk).callback_job_id is not None, timeout=10)
    run_worker(["default"])

    detail = as_agent.get(f"{BATCHES}{batch.pk}/").json()
    assert (detail["progress"], detail["counts"]) == (100, {"succeeded": 3})
    callback = Job.objects.get(pk=detail["callback_job"])
    assert callback.payload == {
        "note": "done",
        "batch_id": str(batch.pk),
        "succeeded": 3,
        "failed": 0,
        "canceled": 0,
    }
    assert as_agent.get(BATCHES).json()["results"][0]["id"] == str(batch.pk)


def test_a_bad_member_refuses_the_whole_batch_naming_it(as_agent, tenant):
    members = [{"kind": "jobs.sleep", "payload": {"seconds": 1}}, {"kind": "jobs.sleep"}]

    response = as_agent.post(BATCHES, {"members": members}, format="json")

    assert response.status_code == 400
    assert "1" in response.json()["members"]
    assert not Batch.objects.exists()
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"members": []}, "members"),
        ({"members": [{"kind": "jobs.clean_up_jobs"}]}, "members"),
        ({"members": [{"kind": "jobs.noop"}], "callback_kind": "nothing.here"}, "callback_kind"),
        ({"members": [{"kind": "jobs.noop"}], "callback_payload": {"a": 1}}, "callback_payload"),
    ],
)
def test_bad_batch_input_answers_400(as_agent, body, field):
    response = as_agent.post(BATCHES, body, format="json")

    assert response.status_code == 400
    assert field in response.json()


def test_canceling_a_batch_cancels_its_waiting_members(as_agent, tenant):
    batch = Batch.objects.get(pk=_create(as_agent).json()["id"])

    response = as_agent.post(f"{BATCHES}{batch.pk}/cancel/")

    assert response.json() == {"canceled": 3, "cancel_requested": 0, "skipped": 0}
    assert set(Job.objects.filter(batch=batch).values_list("status", flat=True)) == {"canceled"}


def test_another_tenants_batch_is_not_found(as_agent, other_tenant):
    batch = create_batch(tenant=other_tenant)
    enqueue_jobs(tenant=other_tenant, kind="jobs.noop", payloads=[{}], batch=batch)

    assert as_agent.get(f"{BATCHES}{batch.pk}/").status_code == 404
    assert as_agent.post(f"{BATCHES}{batch.pk}/cancel/").status_code == 404
    assert as_agent.get(f"{BATCHES}not-an-id/").status_code == 404
    assert as_agent.get(BATCHES).json()["results"] == []
    assert Job.objects.get(batch=batch).status == Job.Status.QUEUED


def test_the_admin_shows_a_batch_with_its_progress_and_members_to_its_tenant_only(
    client: Client, tenant, other_tenant, agent
):
    agent.is_staff = True
    agent.save()
    client.force_login(agent)
    batch = create_batch(tenant=tenant, description="nightly")
    jobs = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}, {}], batch=batch)
    theirs = create_batch(tenant=other_tenant, description="theirs")

    page = client.get(reverse("admin:jobs_batch_change", args=[batch.pk]))

    assert page.status_code == 200
    text = page.content.decode()
    assert "2 queued" in text
    assert str(jobs[0].pk) in text
    listing = client.get(reverse("admin:jobs_batch_changelist")).content.decode()
    assert "nightly" in listing
    assert "theirs" not in listing
    assert client.get(reverse("admin:jobs_batch_change", args=[theirs.pk])).status_code == 302

    client.post(
        reverse("admin:jobs_batch_changelist"),
        {"action": "cancel", "_selected_action": [str(batch.pk)]},
    )
    assert {job.status for job in Job.objects.filter(batch=batch)} == {Job.Status.CANCELED}
