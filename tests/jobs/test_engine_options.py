"""Engine options a kind or a call chooses: snooze without using an attempt, backoff styles, and
idempotency windows (unique for a while, debounce, throttle)."""

import random
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils import timezone
from rest_framework import serializers

from jobs.errors import Throttled
from jobs.kinds import EXPONENTIAL, JITTERED, JobKind, job_kind
from jobs.models import Job, JobLog
from jobs.runtime.runner import backoff
from jobs.services.jobs import enqueue_job
from tenants.models import Tenant
from tests.workers import status_of

JOBS = "/api/v1/jobs/"

# --- Snooze ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_snoozed_job_runs_again_later_without_using_an_attempt(tenant, work_until):
    job = enqueue_job(tenant=tenant, kind="tests.snooze_then_succeed", payload={"times": 2})

    work_until(lambda: status_of(job) == Job.Status.SUCCEEDED, timeout=30)

    job.refresh_from_db()
    assert (job.attempt, job.max_attempts, job.snoozes) == (1, 1, 2)
    assert job.result == {"attempt": 1, "snoozes": 2}
    events = list(JobLog.objects.filter(job=job).values_list("event", flat=True))
    assert events.count("snoozed") == 2
    assert "retry_scheduled" not in events


@pytest.mark.django_db(transaction=True)
def test_snoozes_past_the_kinds_limit_use_up_attempts_and_then_fail(tenant, work_until):
    job = enqueue_job(tenant=tenant, kind="tests.always_snooze", payload={})

    work_until(lambda: status_of(job) == Job.Status.FAILED, timeout=30)

    job.refresh_from_db()
    assert (job.attempt, job.snoozes) == (2, 1)
    assert "after 1 snoozes and every attempt" in job.error_message


# --- Backoff styles ----------------------------------------------------------------------------


def _kind(style) -> JobKind:
    return JobKind(name="x", func=lambda ctx: None, queue="default", backoff=style, backoff_base=2)


def test_exponential_backoff_without_jitter_doubles_from_the_base():
    kind = _kind(EXPONENTIAL)

    assert [backoff(kind, attempt) for attempt in (1, 2, 3, 4)] == [2, 4, 8, 16]


def test_a_fixed_list_of_delays_is_followed_and_its_last_repeats():
    kind = _kind((1.0, 3.0))

    assert [backoff(kind, attempt) for attempt in (1, 2, 3, 4)] == [1, 3, 3, 3]


def test_jittered_backoff_stays_between_zero_and_the_doubling_ceiling():
    kind = _kind(JITTERED)
    random.seed(7)

    delays = [backoff(kind, 3) for _ in range(200)]

    assert all(0 <= delay <= 8 for delay in delays)
    assert len(set(delays)) > 100


@pytest.mark.parametrize("style", ["linear", [], [-1]])
def test_a_kind_with_an_unknown_backoff_is_refused_at_registration(style):
    with pytest.raises(ImproperlyConfigured):
        job_kind("tests.bad_backoff", backoff=style)(lambda ctx: None)


@pytest.mark.django_db(transaction=True)
def test_a_failing_job_waits_the_listed_delays_between_attempts(tenant, work_until):
    job = enqueue_job(tenant=tenant, kind="tests.fixed_backoff", payload={})

    work_until(lambda: status_of(job) == Job.Status.FAILED, timeout=30)

    waits = JobLog.objects.filter(job=job, event=JobLog.Event.RETRY_SCHEDULED)
    assert [line.data["delay"] for line in waits.order_by("created_at")] == [1, 3, 3]


# --- Idempotency windows -----------------------------------------------------------------------

WINDOW = timedelta(minutes=10)


@pytest.mark.django_db
def test_unique_for_returns_the_keys_job_even_after_it_finished_until_the_window_ends(tenant):
    first = enqueue_job(
        tenant=tenant, kind="jobs.noop", payload={}, idempotency_key="k", unique_for=WINDOW
    )
    Job.objects.filter(pk=first.pk).update(status=Job.Status.SUCCEEDED)

    again = enqueue_job(
        tenant=tenant, kind="jobs.noop", payload={}, idempotency_key="k", unique_for=WINDOW
    )
    assert again.pk == first.pk

    Job.objects.filter(pk=first.pk).update(created_at=timezone.now() - WINDOW)
    later = enqueue_job(
        tenant=tenant, kind="jobs.noop", payload={}, idempotency_key="k", unique_for=WINDOW
    )
    assert later.pk != first.pk


@pytest.mark.django_db
def test_throttle_refuses_a_second_job_with_the_key_within_the_window(tenant, other_tenant):
    enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, idempotency_key="k", throttle=WINDOW)

    with pytest.raises(Throttled) as refused:
        enqueue_job(
            tenant=tenant, kind="jobs.noop", payload={}, idempotency_key="k", throttle=WINDOW
        )

    assert 590 < refused.value.retry_after <= 600
    # Another key, or another tenant with the same key, is not held back.
    enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, idempotency_key="j", throttle=WINDOW)
    enqueue_job(
        tenant=other_tenant, kind="jobs.noop", payload={}, idempotency_key="k", throttle=WINDOW
    )
    assert Job.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_debounce_keeps_one_waiting_job_with_the_last_payload_and_runs_it_once(tenant, work_until):
    window = timedelta(seconds=1)
    first = enqueue_job(
        tenant=tenant, kind="jobs.noop", payload={"n": 1}, idempotency_key="k", debounce=window
    )
    due = Job.objects.get(pk=first.pk).scheduled_at
    second = enqueue_job(
        tenant=tenant, kind="jobs.noop", payload={"n": 2}, idempotency_key="k", debounce=window
    )

    assert second.pk == first.pk
    waiting = Job.objects.get(pk=first.pk)
    assert (waiting.status, waiting.payload) == (Job.Status.SCHEDULED, {"n": 2})
    assert due is not None
    assert waiting.scheduled_at is not None
    assert waiting.scheduled_at > due
    work_until(lambda: status_of(first) == Job.Status.SUCCEEDED, timeout=20)
    assert Job.objects.count() == 1
    assert JobLog.objects.filter(job=first, event=JobLog.Event.STARTED).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "options",
    [
        {"unique_for": WINDOW},
        {"unique_for": WINDOW, "idempotency_key": "k", "throttle": WINDOW},
        {"throttle": timedelta(0), "idempotency_key": "k"},
    ],
)
def test_a_window_without_a_key_or_with_another_window_is_refused(tenant, options):
    with pytest.raises(serializers.ValidationError):
        enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, **options)

    assert not Job.objects.exists()


def test_the_api_answers_a_throttled_enqueue_with_429_and_retry_after(api_client, agent):
    api_client.force_authenticate(agent)
    body = {"kind": "jobs.noop", "payload": {}, "idempotency_key": "nightly", "throttle": 60}

    first = api_client.post(JOBS, body, format="json")
    second = api_client.post(JOBS, body, format="json")

    assert first.status_code == 202
    assert second.status_code == 429
    assert 0 < int(second["Retry-After"]) <= 60
    assert "At most one jobs.noop job with key 'nightly' per 60 s" in second.json()["detail"]


def test_the_api_refuses_a_window_without_a_key(api_client, agent):
    api_client.force_authenticate(agent)

    response = api_client.post(JOBS, {"kind": "jobs.noop", "unique_for": 60}, format="json")

    assert response.status_code == 400
    assert "idempotency_key" in response.json()


# --- A tenant's own queue defaults -------------------------------------------------------------


@pytest.mark.django_db
def test_a_tenants_queue_defaults_beat_the_kind_and_queue_and_the_call_beats_both(tenant):
    tenant.queue_defaults = {"default": {"timeout": 900, "max_attempts": 7}}
    tenant.full_clean()
    tenant.save()

    own = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    chosen = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, timeout=5, max_attempts=1)
    elsewhere = enqueue_job(tenant=tenant, kind="tests.email_noop", payload={})

    assert (own.timeout, own.max_attempts) == (900, 7)
    assert (chosen.timeout, chosen.max_attempts) == (5, 1)
    email = settings.CONVEYOR_QUEUES["email"]
    assert (elsewhere.timeout, elsewhere.max_attempts) == (email["timeout"], email["max_attempts"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("reports", "Queue defaults are an object"),
        ({"nowhere": {"timeout": 5}}, "nowhere: there is no such queue"),
        ({"default": {}}, "default: give timeout and/or max_attempts"),
        ({"default": {"retries": 2}}, "'retries' is not timeout or max_attempts"),
        ({"default": {"timeout": 0}}, "default.timeout: a whole number from 1 to 3600"),
        ({"default": {"timeout": 86400}}, "default.timeout: a whole number from 1 to 3600"),
        ({"default": {"max_attempts": "3"}}, "default.max_attempts: a whole number from 1 to 10"),
        ({"default": {"max_attempts": 100}}, "default.max_attempts: a whole number from 1 to 10"),
        ({"maintenance": {"timeout": 5}}, "maintenance: the platform's own queue"),
    ],
)
def test_bad_queue_defaults_are_refused_with_the_reason(value, message):
    tenant = Tenant(name="Acme", slug="acme", queue_defaults=value)

    with pytest.raises(ValidationError) as refused:
        tenant.full_clean()

    assert message in str(refused.value)
