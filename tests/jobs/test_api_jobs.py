"""The jobs API: enqueue, list with filters, ordering and cursors, detail, cancel, retry, bulk."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Job, JobLog, Priority, Schedule
from jobs.services.jobs import add_log, create_batch, enqueue_job, enqueue_jobs
from tenants.models import Tenant
from tests.factories import make_api_key

JOBS = "/api/v1/jobs/"


@pytest.fixture
def as_agent(api_client: APIClient, agent: User) -> APIClient:
    api_client.force_authenticate(agent)
    return api_client


def make_job(tenant: Tenant, kind: str = "jobs.noop", **fields: Any) -> Job:
    """A job enqueued by the real service, then put in the state the test needs."""
    payload = fields.pop("payload", {})
    job = enqueue_job(tenant=tenant, kind=kind, payload=payload)
    if fields:
        Job.objects.filter(pk=job.pk).update(**fields)
        job.refresh_from_db()
    return job


def enqueue(client: APIClient, **body: Any) -> Any:
    return client.post(JOBS, body, format="json")


def ids(response: Any) -> list[str]:
    return [row["id"] for row in response.json()["results"]]


def walk_pages(client: APIClient, url: str) -> Iterator[list[str]]:
    """Follow `next` links from `url`, yielding each page's job ids."""
    while url:
        body = client.get(url).json()
        yield [row["id"] for row in body["results"]]
        url = body["next"]


# --- Enqueue -----------------------------------------------------------------------------------


def test_an_agent_enqueues_a_job_and_gets_it_back_queued_with_202(as_agent, tenant, agent):
    response = enqueue(as_agent, kind="jobs.sleep", payload={"seconds": 0.1}, priority="high")

    assert response.status_code == 202
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert (body["status"], body["priority"], body["created_by"]) == (
        "queued",
        "high",
        "agnes-agent",
    )
    assert body["payload"] == {"seconds": 0.1, "steps": 10}
    assert (job.tenant, job.status, job.queue) == (tenant, Job.Status.QUEUED, "default")


def test_an_api_key_enqueues_in_its_own_tenant(api_client, tenant, agent):
    _key, raw_key = make_api_key(agent, tenant=tenant)

    response = api_client.post(
        JOBS, {"kind": "jobs.noop"}, format="json", HTTP_AUTHORIZATION=f"Bearer {raw_key}"
    )

    assert response.status_code == 202
    assert Job.objects.get(pk=response.json()["id"]).tenant == tenant


def test_secrets_in_a_payload_are_masked_in_answers_but_kept_for_the_job(as_agent):
    payload = {"to": "a@example.com", "api_key": "sk-live-123", "nested": {"password": "pw"}}

    response = enqueue(as_agent, kind="jobs.noop", payload=payload)
    listed = as_agent.get(JOBS).json()["results"][0]

    masked = {"to": "a@example.com", "api_key": "••••••", "nested": {"password": "••••••"}}
    assert response.json()["payload"] == masked
    assert listed["payload"] == masked
    assert Job.objects.get(pk=response.json()["id"]).payload == payload


def test_options_reach_the_job(as_agent):
    response = enqueue(
        as_agent, kind="jobs.noop", priority="low", timeout=5, max_attempts=7, delay=600
    )

    job = Job.objects.get(pk=response.json()["id"])
    assert (job.priority, job.timeout, job.max_attempts) == (Priority.LOW, 5, 7)
    assert job.status == Job.Status.SCHEDULED
    assert job.scheduled_at is not None
    assert timedelta(seconds=590) < job.scheduled_at - timezone.now() <= timedelta(seconds=600)


def test_a_run_at_time_schedules_the_job(as_agent):
    run_at = timezone.now() + timedelta(hours=2)

    response = enqueue(as_agent, kind="jobs.noop", run_at=run_at.isoformat())

    assert response.json()["status"] == "scheduled"
    assert Job.objects.get(pk=response.json()["id"]).scheduled_at == run_at


def test_the_idempotency_key_header_returns_the_active_job_instead_of_a_new_one(as_agent):
    first = as_agent.post(JOBS, {"kind": "jobs.noop"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = as_agent.post(JOBS, {"kind": "jobs.noop"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["idempotency_key"] == "k-1"
    assert Job.objects.count() == 1


def test_the_idempotency_key_field_works_like_the_header(as_agent):
    first = enqueue(as_agent, kind="jobs.noop", idempotency_key="k-2")
    again = as_agent.post(JOBS, {"kind": "jobs.noop"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")

    assert again.json()["id"] == first.json()["id"]


def test_a_job_depending_on_another_of_the_tenant_waits_deferred(as_agent, tenant):
    parent = make_job(tenant)

    response = enqueue(as_agent, kind="jobs.noop", depends_on=[str(parent.pk)])

    assert response.json()["status"] == "deferred"
    detail = as_agent.get(f"{JOBS}{response.json()['id']}/").json()
    assert detail["depends_on"] == [str(parent.pk)]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"kind": ["This field is required."]}),
        (
            {"kind": "nope.nothing"},
            {"kind": ["No job kind is registered as 'nope.nothing'. See GET /api/v1/kinds/."]},
        ),
        (
            {"kind": "jobs.reconcile_jobs"},
            {
                "kind": [
                    "'jobs.reconcile_jobs' is internal: the product starts it itself. "
                    "See GET /api/v1/kinds/."
                ]
            },
        ),
        (
            {"kind": "communications.finish_campaign", "payload": {"campaign_id": 1}},
            {
                "kind": [
                    "'communications.finish_campaign' is internal: the product starts it itself. "
                    "See GET /api/v1/kinds/."
                ]
            },
        ),
        (
            {"kind": "jobs.noop", "priority": "critical"},
            {"priority": ['"critical" is not a valid choice.']},
        ),
        (
            {"kind": "jobs.noop", "timeout": 24 * 3600},
            {"timeout": ["Ensure this value is less than or equal to 3600."]},
        ),
        (
            {"kind": "jobs.noop", "max_attempts": 100},
            {"max_attempts": ["Ensure this value is less than or equal to 10."]},
        ),
        ({"kind": "jobs.sleep"}, {"payload": {"seconds": ["This field is required."]}}),
        (
            {"kind": "jobs.sleep", "payload": {"seconds": -1}},
            {"payload": {"seconds": ["Ensure this value is greater than or equal to 0."]}},
        ),
        (
            {"kind": "jobs.noop", "payload": [1]},
            {"payload": ['Expected a dictionary of items but got type "list".']},
        ),
        (
            {"kind": "jobs.noop", "payload": {"text": "a\u0000b"}},
            {"detail": "Text in the body may not contain NUL (\\u0000) characters."},
        ),
        (
            {"kind": "jobs.noop", "priority": "urgent"},
            {"priority": ['"urgent" is not a valid choice.']},
        ),
        (
            {"kind": "jobs.noop", "delay": -1},
            {"delay": ["Ensure this value is greater than or equal to 0."]},
        ),
        (
            {"kind": "jobs.noop", "run_at": "soon"},
            {
                "run_at": [
                    "Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ]
            },
        ),
        (
            {"kind": "jobs.noop", "delay": 5, "run_at": "2026-01-01T00:00:00Z"},
            {"run_at": ["Give either delay or run_at, not both."]},
        ),
        (
            {"kind": "jobs.noop", "timeout": 0},
            {"timeout": ["Ensure this value is greater than or equal to 1."]},
        ),
        (
            {"kind": "jobs.noop", "max_attempts": 0},
            {"max_attempts": ["Ensure this value is greater than or equal to 1."]},
        ),
        (
            {"kind": "jobs.noop", "idempotency_key": "k" * 201},
            {"idempotency_key": ["Ensure this field has no more than 200 characters."]},
        ),
        (
            {"kind": "jobs.noop", "depends_on": ["not-a-uuid"]},
            {"depends_on": {"0": ["Must be a valid UUID."]}},
        ),
    ],
    ids=lambda value: str(value)[:40],
)
def test_invalid_input_answers_400_with_the_field_errors(as_agent, body, errors):
    response = enqueue(as_agent, **body)

    assert response.status_code == 400
    assert response.json() == errors
    assert Job.objects.count() == 0


def test_a_run_at_time_more_than_a_year_ahead_is_refused(as_agent):
    response = enqueue(as_agent, kind="jobs.noop", run_at="9999-12-31T23:59:59Z")

    assert response.status_code == 400
    assert response.json() == {"run_at": ["Choose a time at most a year ahead."]}


def test_depending_on_another_tenants_job_is_refused_like_a_missing_one(as_agent, other_tenant):
    theirs = make_job(other_tenant)

    response = enqueue(as_agent, kind="jobs.noop", depends_on=[str(theirs.pk)])

    assert response.status_code == 400
    assert response.json() == {"depends_on": [f"No job {theirs.pk} in this tenant."]}


def test_a_header_and_a_field_naming_different_idempotency_keys_are_refused(as_agent):
    response = as_agent.post(
        JOBS,
        {"kind": "jobs.noop", "idempotency_key": "a"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="b",
    )

    assert response.status_code == 400
    assert response.json() == {"idempotency_key": ["It differs from the Idempotency-Key header."]}


def test_an_idempotency_key_header_over_200_characters_is_refused(as_agent):
    response = as_agent.post(
        JOBS, {"kind": "jobs.noop"}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 201
    )

    assert response.status_code == 400
    assert response.json() == {"idempotency_key": ["Keep the key to 200 characters."]}


def test_text_that_merely_spells_an_escape_is_a_fine_payload(as_agent):
    response = enqueue(
        as_agent, kind="jobs.noop", payload={"text": "\\u0000 is how JSON writes NUL"}
    )

    assert response.status_code == 202


# --- List: filters, ordering, pagination -------------------------------------------------------


def test_the_list_shows_only_the_tenants_jobs_newest_first(
    api_client, tenant, other_tenant, viewer
):
    older, newer = make_job(tenant), make_job(tenant)
    make_job(other_tenant)
    api_client.force_authenticate(viewer)

    response = api_client.get(JOBS)

    assert response.status_code == 200
    assert ids(response) == [str(newer.pk), str(older.pk)]


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("status=failed", ["failed-email"]),
        ("status=failed&status=succeeded", ["succeeded-high", "failed-email"]),
        ("queue=email", ["failed-email"]),
        ("kind=tests.email_noop", ["failed-email"]),
        ("priority=high", ["succeeded-high"]),
        ("idempotency_key=key-1", ["succeeded-high"]),
    ],
)
def test_the_list_filters_by_status_queue_kind_priority_and_key(as_agent, tenant, query, matches):
    jobs = {
        "failed-email": make_job(tenant, "tests.email_noop", status=Job.Status.FAILED),
        "succeeded-high": make_job(
            tenant, status=Job.Status.SUCCEEDED, priority="high", idempotency_key="key-1"
        ),
        "queued": make_job(tenant),
    }

    response = as_agent.get(f"{JOBS}?{query}")

    assert ids(response) == [str(jobs[name].pk) for name in matches]


def test_the_list_filters_by_created_and_finished_time_ranges(as_agent, tenant):
    now = timezone.now()
    old = make_job(tenant, created_at=now - timedelta(days=3), finished_at=now - timedelta(days=2))
    recent = make_job(tenant, finished_at=now - timedelta(minutes=5))
    day_ago = (now - timedelta(days=1)).isoformat().replace("+00:00", "Z")

    created_since = ids(as_agent.get(JOBS, {"created_after": day_ago}))
    created_until = ids(as_agent.get(JOBS, {"created_before": day_ago}))
    finished_since = ids(as_agent.get(JOBS, {"finished_after": day_ago}))
    finished_until = ids(as_agent.get(JOBS, {"finished_before": day_ago}))

    assert (created_since, created_until) == ([str(recent.pk)], [str(old.pk)])
    assert (finished_since, finished_until) == ([str(recent.pk)], [str(old.pk)])


def test_the_list_filters_by_the_schedule_a_job_came_from(as_agent, tenant):
    schedule = Schedule.objects.create(
        tenant=tenant, name="hourly", kind="jobs.noop", interval_seconds=3600
    )
    scheduled = make_job(tenant, schedule=schedule)
    make_job(tenant)

    response = as_agent.get(JOBS, {"schedule": str(schedule.pk)})

    assert ids(response) == [str(scheduled.pk)]
    assert response.json()["results"][0]["schedule"] == str(schedule.pk)


def test_the_list_filters_by_batch_and_parent(as_agent, tenant):
    batch = create_batch(tenant=tenant)
    parent = make_job(tenant)
    in_batch = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, batch=batch)
    child = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, parent=parent)

    assert ids(as_agent.get(JOBS, {"batch": str(batch.pk)})) == [str(in_batch.pk)]
    assert ids(as_agent.get(JOBS, {"parent": str(parent.pk)})) == [str(child.pk)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=lost", "status"),
        ("queue=nowhere", "queue"),
        ("kind=nope", "kind"),
        ("priority=urgent", "priority"),
        ("created_after=yesterday", "created_after"),
        ("finished_before=2026-13-01", "finished_before"),
        ("batch=42", "batch"),
        ("schedule=x", "schedule"),
        ("ordering=kind", "ordering"),
    ],
)
def test_an_invalid_filter_or_ordering_answers_400_naming_it(as_agent, query, field):
    response = as_agent.get(f"{JOBS}?{query}")

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_a_time_with_an_offset_postgresql_does_not_take_is_compared_in_utc(as_agent, tenant):
    job = make_job(tenant, finished_at=timezone.now())

    response = as_agent.get(JOBS, {"finished_after": "0356-11-22T09:16:16-23:13"})

    assert ids(response) == [str(job.pk)]


def test_a_time_that_is_out_of_range_in_utc_is_refused(as_agent):
    response = as_agent.get(JOBS, {"created_after": "0001-01-01T00:00:00+01:00"})

    assert response.status_code == 400
    assert response.json() == {"created_after": ["This time is out of range."]}


def test_the_list_orders_oldest_first_on_request(as_agent, tenant):
    first, second = make_job(tenant), make_job(tenant)

    response = as_agent.get(JOBS, {"ordering": "created_at"})

    assert ids(response) == [str(first.pk), str(second.pk)]


@pytest.mark.parametrize("ordering", ["-created_at", "created_at"])
def test_cursor_pages_show_every_job_once_even_with_equal_times(as_agent, tenant, ordering):
    jobs = [make_job(tenant) for _ in range(7)]
    same_time = timezone.now()
    Job.objects.filter(pk__in=[job.pk for job in jobs[2:5]]).update(created_at=same_time)

    pages = list(walk_pages(as_agent, f"{JOBS}?page_size=2&ordering={ordering}"))

    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert sorted(job_id for page in pages for job_id in page) == sorted(
        str(job.pk) for job in jobs
    )


def test_a_cursor_page_links_back_to_the_previous_one(as_agent, tenant):
    for _ in range(3):
        make_job(tenant)
    first = as_agent.get(JOBS, {"page_size": 2}).json()

    second = as_agent.get(first["next"]).json()
    back = as_agent.get(second["previous"]).json()

    assert first["previous"] is None
    assert second["next"] is None
    assert [row["id"] for row in back["results"]] == [row["id"] for row in first["results"]]


@pytest.mark.parametrize("cursor", ["garbage!", "cD1ub3QtYS10aW1l"])  # the second is p=not-a-time
def test_an_invalid_cursor_answers_404(as_agent, cursor):
    response = as_agent.get(JOBS, {"cursor": cursor})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


def test_a_page_holds_at_most_200_jobs(as_agent, tenant):
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 205)

    response = as_agent.get(JOBS, {"page_size": 1000})

    assert len(response.json()["results"]) == 200


def test_the_list_costs_the_same_queries_for_one_job_or_many(
    as_agent, tenant, django_assert_num_queries
):
    make_job(tenant)
    with django_assert_num_queries(2):  # the caller's role, then one page of jobs
        as_agent.get(JOBS)

    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 30)
    with django_assert_num_queries(2):
        response = as_agent.get(JOBS)
    assert len(response.json()["results"]) == 31


def test_the_log_list_costs_the_same_queries_for_few_lines_or_many(
    as_agent, tenant, django_assert_num_queries
):
    job = make_job(tenant)
    JobLog.objects.bulk_create(
        [JobLog(job=job, tenant=tenant, event="note", message=str(n)) for n in range(30)]
    )

    with django_assert_num_queries(3):  # the caller's role, the job, one page of lines
        response = as_agent.get(f"{JOBS}{job.pk}/logs/")

    assert len(response.json()["results"]) == 31


# --- Detail and logs ---------------------------------------------------------------------------


def test_the_detail_shows_progress_the_error_and_the_last_20_log_lines(as_agent, tenant):
    job = make_job(
        tenant, progress=40, progress_message="4 of 10", error_message="boom", status="retrying"
    )
    JobLog.objects.bulk_create(
        [JobLog(job=job, tenant=tenant, event="note", message=f"line {n}") for n in range(25)]
    )

    body = as_agent.get(f"{JOBS}{job.pk}/").json()

    assert (body["progress"], body["progress_message"], body["error_message"]) == (
        40,
        "4 of 10",
        "boom",
    )
    assert [log["message"] for log in body["logs"]] == [f"line {n}" for n in range(5, 25)]


def test_log_data_is_redacted(as_agent, tenant):
    job = make_job(tenant)
    add_log(job, "note", "called the provider", data={"token": "t-1", "status": 200})

    lines = as_agent.get(f"{JOBS}{job.pk}/logs/").json()["results"]

    assert lines[-1]["data"] == {"token": "••••••", "status": 200}


def test_the_log_list_pages_oldest_first(as_agent, tenant):
    job = make_job(tenant)
    for n in range(4):
        add_log(job, "note", f"line {n}")

    first = as_agent.get(f"{JOBS}{job.pk}/logs/?page_size=3").json()
    rest = as_agent.get(first["next"]).json()

    assert [row["event"] for row in first["results"]] == ["enqueued", "note", "note"]
    assert [row["message"] for row in rest["results"]] == ["line 2", "line 3"]


@pytest.mark.parametrize("path", ["{id}/", "{id}/logs/", "{id}/cancel/", "{id}/retry/"])
def test_a_malformed_job_id_answers_a_json_404(as_agent, path):
    url = JOBS + path.format(id="not-a-uuid")

    response = as_agent.post(url) if path.endswith(("cancel/", "retry/")) else as_agent.get(url)

    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


# --- Cancel and retry --------------------------------------------------------------------------


def test_cancelling_a_queued_job_cancels_it(as_agent, tenant):
    job = make_job(tenant)

    response = as_agent.post(f"{JOBS}{job.pk}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "canceled"


def test_cancelling_a_running_job_asks_it_to_stop(as_agent, tenant):
    job = make_job(tenant, status=Job.Status.STARTED)

    response = as_agent.post(f"{JOBS}{job.pk}/cancel/")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancel_requested_at"] is None) == (
        "started",
        False,
    )


def test_cancelling_a_finished_job_answers_409_saying_why(as_agent, tenant):
    job = make_job(tenant, status=Job.Status.SUCCEEDED)

    response = as_agent.post(f"{JOBS}{job.pk}/cancel/")

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Job {job.pk} already succeeded: only waiting or running jobs can be canceled."
    }


def test_retrying_a_failed_job_hands_it_over_again(as_agent, tenant):
    job = make_job(tenant, status=Job.Status.FAILED, attempt=3)

    response = as_agent.post(f"{JOBS}{job.pk}/retry/")

    assert response.status_code == 202
    assert (response.json()["status"], response.json()["attempt"]) == ("queued", 0)


def test_retrying_a_queued_job_answers_409(as_agent, tenant):
    job = make_job(tenant)

    response = as_agent.post(f"{JOBS}{job.pk}/retry/")

    assert response.status_code == 409
    assert "only failed or canceled jobs can be retried" in response.json()["detail"]


# --- Bulk --------------------------------------------------------------------------------------


def test_bulk_cancel_by_ids_answers_the_counts(as_agent, tenant):
    queued, running = make_job(tenant), make_job(tenant, status=Job.Status.STARTED)
    done = make_job(tenant, status=Job.Status.SUCCEEDED)

    response = as_agent.post(
        f"{JOBS}bulk-cancel/",
        {"ids": [str(queued.pk), str(running.pk), str(done.pk)]},
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == {"canceled": 1, "cancel_requested": 1, "skipped": 1}


def test_bulk_retry_by_the_lists_filters_retries_only_the_matching_jobs(as_agent, tenant):
    failed_email = make_job(tenant, "tests.email_noop", status=Job.Status.FAILED)
    failed_default = make_job(tenant, status=Job.Status.FAILED)

    response = as_agent.post(f"{JOBS}bulk-retry/?status=failed&queue=email", {}, format="json")

    assert response.json() == {"retried": 1, "skipped": 0}
    assert Job.objects.get(pk=failed_email.pk).status == Job.Status.QUEUED
    assert Job.objects.get(pk=failed_default.pk).status == Job.Status.FAILED


def test_ids_and_filters_together_act_on_the_jobs_matching_both(as_agent, tenant):
    failed, canceled = make_job(tenant, status="failed"), make_job(tenant, status="canceled")

    response = as_agent.post(
        f"{JOBS}bulk-retry/?status=canceled",
        {"ids": [str(failed.pk), str(canceled.pk)]},
        format="json",
    )

    assert response.json() == {"retried": 1, "skipped": 0}


def test_a_bulk_operation_without_ids_or_filters_is_refused(as_agent, tenant):
    make_job(tenant)

    response = as_agent.post(f"{JOBS}bulk-cancel/", {}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "ids": ["Give ids, or at least one filter in the query, e.g. ?status=failed."]
    }
    assert Job.objects.get().status == Job.Status.QUEUED


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (f"{JOBS}bulk-cancel/", {"ids": ["x"]}, "ids"),
        (f"{JOBS}bulk-cancel/", {"ids": "all"}, "ids"),
        (f"{JOBS}bulk-retry/?status=lost", {}, "status"),
    ],
)
def test_invalid_bulk_input_answers_400(as_agent, url, body, field):
    response = as_agent.post(url, body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_bulk_ids_are_capped_at_a_thousand(as_agent):
    many = [f"00000000-0000-4000-8000-{n:012d}" for n in range(1001)]

    response = as_agent.post(f"{JOBS}bulk-cancel/", {"ids": many}, format="json")

    assert response.json() == {"ids": ["Ensure this field has no more than 1000 elements."]}
