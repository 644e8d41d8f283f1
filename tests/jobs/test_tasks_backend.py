"""Django's Tasks API on Conveyor: plain `@task` functions run as tracked jobs on real workers."""

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.tasks import TaskResultStatus, task_backends
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.test import override_settings
from django.utils import timezone

from jobs.errors import UnknownKind
from jobs.kinds import all_kinds, get_kind
from jobs.models import Job, JobLog, Priority
from jobs.services.jobs import enqueue_job
from jobs.tasks_backend import MissingTenant, conveyor_priority, enqueue_for, tenant_context
from tenants.models import Tenant
from tests.factories import TenantFactory
from tests.jobs import django_tasks
from tests.jobs.conftest import status_of, wait_for

ALLOW_TEST_TASKS = ["tests.jobs.django_tasks.*"]
READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED


def conveyor_tasks(*, queues: tuple[str, ...] = ("default", "email"), **options: Any) -> Any:
    """Settings making Conveyor the default task backend, allowing this suite's tasks."""
    backend = {
        "BACKEND": "jobs.tasks_backend.ConveyorBackend",
        "QUEUES": list(queues),
        "OPTIONS": {"TASKS": ALLOW_TEST_TASKS, **options},
    }
    return override_settings(TASKS={"default": backend})


@pytest.fixture(autouse=True)
def _conveyor_backend(tenant: Tenant) -> Iterator[None]:
    """Conveyor is the task backend; tasks naming no tenant belong to `acme`."""
    with conveyor_tasks(DEFAULT_TENANT=tenant.slug):
        yield


@pytest.fixture
def signals() -> Iterator[list[tuple[str, str, str]]]:
    """(signal, result id, status) for each of Django's task signals, in the order sent."""
    sent: list[tuple[str, str, str]] = []
    receivers = []
    for name, signal in (
        ("enqueued", task_enqueued),
        ("started", task_started),
        ("finished", task_finished),
    ):

        def receive(sender: type, task_result: Any, name: str = name, **kwargs: Any) -> None:
            sent.append((name, task_result.id, task_result.status))

        signal.connect(receive, weak=False)
        receivers.append((signal, receive))
    yield sent
    for signal, receive in receivers:
        signal.disconnect(receive)


def job_of(result: Any) -> Job:
    return Job.objects.get(pk=result.id)


def error_of(call: Callable[[], object]) -> Exception:
    try:
        call()
    except Exception as error:
        return error
    raise AssertionError("no error was raised")


def test_a_plain_task_enqueued_runs_on_a_worker_and_reports_its_return_value(tenant, run_worker):
    result = django_tasks.add.enqueue(2, 3)
    waiting = result.status

    run_worker()

    done = django_tasks.add.get_result(result.id)
    assert (waiting, done.status, done.return_value) == (READY, SUCCESSFUL, 5)
    assert (done.attempts, done.errors, done.args, done.kwargs) == (1, [], [2, 3], {})
    job = job_of(result)
    assert (job.kind, job.queue, job.tenant, job.status) == (
        "tests.jobs.django_tasks.add",
        "default",
        tenant,
        Job.Status.SUCCEEDED,
    )
    assert list(JobLog.objects.filter(job=job).values_list("event", flat=True)) == [
        JobLog.Event.ENQUEUED,
        JobLog.Event.STARTED,
        JobLog.Event.SUCCEEDED,
    ]


def test_a_result_refreshes_in_place_and_reads_the_same_asynchronously(run_worker):
    result = django_tasks.describe.enqueue("a", 1, flag=True)
    run_worker()

    result.refresh()
    later = async_to_sync(django_tasks.describe.aget_result)(result.id)

    expected = {"args": ["a", 1], "kwargs": {"flag": True}}
    assert (result.status, result.return_value) == (SUCCESSFUL, expected)
    assert (later.status, later.return_value, later.finished_at) == (
        SUCCESSFUL,
        expected,
        result.finished_at,
    )


def test_a_task_enqueued_from_async_code_runs_like_any_other(run_worker):
    result = async_to_sync(django_tasks.add.aenqueue)(4, 5)

    run_worker()

    assert django_tasks.add.get_result(result.id).return_value == 9


def test_a_failing_task_reports_failed_with_its_exception_class_and_traceback(run_worker):
    result = django_tasks.fail.enqueue("no data for May")

    run_worker()

    failed = django_tasks.fail.get_result(result.id)
    assert failed.status == FAILED
    assert [error.exception_class for error in failed.errors] == [django_tasks.ReportFailed]
    assert "no data for May" in failed.errors[0].traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = failed.return_value
    job = job_of(result)
    assert (job.status, job.attempt, job.max_attempts) == (Job.Status.FAILED, 1, 1)


def test_a_return_value_json_cannot_hold_fails_the_task_as_in_djangos_backends(run_worker):
    result = django_tasks.not_json.enqueue()

    run_worker()

    failed = django_tasks.not_json.get_result(result.id)
    assert failed.status == FAILED
    assert failed.errors[0].exception_class is TypeError


@pytest.mark.parametrize(
    ("django", "conveyor"),
    [
        (100, Priority.CRITICAL),
        (50, Priority.CRITICAL),
        (49, Priority.HIGH),
        (1, Priority.HIGH),
        (0, Priority.NORMAL),
        (-1, Priority.LOW),
        (-100, Priority.LOW),
    ],
)
def test_django_priorities_map_onto_conveyors_four_levels(django, conveyor):
    assert conveyor_priority(django) == conveyor


def test_higher_priority_tasks_start_first(run_worker):
    results = [
        django_tasks.add.using(priority=priority).enqueue(priority, 0)
        for priority in (-20, 0, 10, 90)
    ]

    run_worker()

    jobs = Job.objects.filter(pk__in=[r.id for r in results]).order_by("started_at")
    assert [(job.priority, job.result) for job in jobs] == [
        (Priority.CRITICAL, 90),
        (Priority.HIGH, 10),
        (Priority.NORMAL, 0),
        (Priority.LOW, -20),
    ]


def test_a_task_with_run_after_waits_until_then(run_worker, work_until):
    due = timezone.now() + timedelta(seconds=2)
    result = django_tasks.add.using(run_after=due).enqueue(1, 1)

    run_worker()
    early = (status_of(job_of(result)), django_tasks.add.get_result(result.id).status)
    work_until(lambda: status_of(job_of(result)) == Job.Status.SUCCEEDED)

    assert early == (Job.Status.SCHEDULED, READY)
    job = job_of(result)
    assert job.scheduled_at == due
    assert job.started_at is not None
    assert job.started_at >= due


def test_a_task_taking_context_sees_the_attempt_number_kept_by_its_job(tenant, work_until):
    retries = {"tests.jobs.django_tasks.attempt_number": {"max_attempts": 3, "backoff_base": 0}}
    with conveyor_tasks(DEFAULT_TENANT=tenant.slug, RETRIES=retries):
        result = django_tasks.attempt_number.enqueue(succeed_on=2)

        work_until(lambda: status_of(job_of(result)) in Job.FINISHED)

        done = django_tasks.attempt_number.get_result(result.id)
    assert (done.status, done.return_value, done.attempts) == (SUCCESSFUL, 2, 2)
    assert [error.exception_class_path for error in done.errors] == [
        "tests.jobs.django_tasks.ReportFailed"
    ]


def test_retries_come_from_options_by_task_path_before_queue(tenant, work_until):
    retries = {
        "tests.jobs.django_tasks.flaky": {"max_attempts": 4, "backoff_base": 0},
        "email": {"max_attempts": 2, "backoff_base": 0},
    }
    key = uuid.uuid4().hex
    with conveyor_tasks(DEFAULT_TENANT=tenant.slug, RETRIES=retries):
        flaky = django_tasks.flaky.using(queue_name="email").enqueue(key, failures=2)
        failing = django_tasks.fail.using(queue_name="email").enqueue("still broken")

        work_until(lambda: all(status_of(job_of(r)) in Job.FINISHED for r in (flaky, failing)))

        recovered = django_tasks.flaky.get_result(flaky.id)
        gave_up = django_tasks.fail.get_result(failing.id)
    assert (recovered.status, recovered.return_value, recovered.attempts) == (SUCCESSFUL, 3, 3)
    assert [e.exception_class_path for e in recovered.errors] == ["builtins.ConnectionError"] * 2
    assert (gave_up.status, gave_up.attempts, len(gave_up.errors)) == (FAILED, 2, 2)
    assert (job_of(flaky).max_attempts, job_of(failing).max_attempts) == (4, 2)


def test_idempotency_options_hand_back_the_active_job_for_a_repeated_call(tenant, signals):
    idempotency = {
        "tests.jobs.django_tasks.add": True,
        "tests.jobs.django_tasks.describe": "report:{report_id}",
    }
    with conveyor_tasks(DEFAULT_TENANT=tenant.slug, IDEMPOTENCY=idempotency):
        first = django_tasks.add.enqueue(1, 2)
        again = django_tasks.add.enqueue(1, 2)
        other = django_tasks.add.enqueue(1, 3)
        report = django_tasks.describe.enqueue(report_id=7, format="pdf")
        same_report = django_tasks.describe.enqueue(report_id=7, format="xlsx")

    assert again.id == first.id
    assert other.id != first.id
    assert same_report.id == report.id
    assert Job.objects.count() == 3
    assert [name for name, _, _ in signals] == ["enqueued"] * 3


def test_djangos_signals_fire_on_enqueue_and_around_each_attempt_in_the_worker(
    tenant, signals, work_until
):
    retries = {"tests.jobs.django_tasks.flaky": {"max_attempts": 2, "backoff_base": 0}}
    with conveyor_tasks(DEFAULT_TENANT=tenant.slug, RETRIES=retries):
        added = django_tasks.add.enqueue(1, 2)
        flaky = django_tasks.flaky.enqueue(uuid.uuid4().hex, failures=1)
        failed = django_tasks.fail.enqueue("x")

        work_until(
            lambda: all(status_of(job_of(r)) in Job.FINISHED for r in (added, flaky, failed))
        )

    assert sorted(signals, key=lambda s: [added.id, flaky.id, failed.id].index(s[1])) == [
        ("enqueued", added.id, READY),
        ("started", added.id, RUNNING),
        ("finished", added.id, SUCCESSFUL),
        ("enqueued", flaky.id, READY),
        ("started", flaky.id, RUNNING),
        ("finished", flaky.id, READY),  # a retry follows
        ("started", flaky.id, RUNNING),
        ("finished", flaky.id, SUCCESSFUL),
        ("enqueued", failed.id, READY),
        ("started", failed.id, RUNNING),
        ("finished", failed.id, FAILED),
    ]


@pytest.mark.parametrize(
    "argument",
    [object(), {1, 2}, b"\xff", timezone.now(), Decimal("1.5"), uuid.uuid4()],
    ids=["object", "set", "bad-bytes", "datetime", "decimal", "uuid"],
)
def test_arguments_json_cannot_hold_are_refused_as_djangos_own_backend_refuses_them(argument):
    with override_settings(
        TASKS={"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    ):
        djangos = error_of(lambda: django_tasks.describe.enqueue(argument, key=[argument]))

    ours = error_of(lambda: django_tasks.describe.enqueue(argument, key=[argument]))

    assert (type(ours), str(ours)) == (type(djangos), str(djangos))
    assert not Job.objects.exists()


def test_a_nan_argument_is_refused_before_it_reaches_postgresql():
    with pytest.raises(ValueError, match="Out of range float values"):
        django_tasks.describe.enqueue(float("nan"))

    assert not Job.objects.exists()


def test_an_unknown_queue_is_refused_as_django_refuses_it():
    with override_settings(
        TASKS={
            "default": {
                "BACKEND": "django.tasks.backends.dummy.DummyBackend",
                "QUEUES": ["default", "email"],
            }
        }
    ):
        djangos = error_of(lambda: django_tasks.add.using(queue_name="nowhere"))

    ours = error_of(lambda: django_tasks.add.using(queue_name="nowhere"))

    assert (type(ours), str(ours)) == (InvalidTask, str(djangos))


def test_a_queue_conveyor_lacks_is_refused_and_reported_by_the_system_check(tenant):
    with conveyor_tasks(queues=("default", "ghost"), DEFAULT_TENANT=tenant.slug):
        with pytest.raises(InvalidTask, match="'ghost' is not a Conveyor queue"):
            django_tasks.add.using(queue_name="ghost")
        problems = task_backends["default"].check()

    assert [problem.id for problem in problems] == ["jobs.E101"]


def test_the_system_check_names_unknown_options_and_a_missing_allow_list():
    with override_settings(
        TASKS={
            "default": {
                "BACKEND": "jobs.tasks_backend.ConveyorBackend",
                "OPTIONS": {"RETRY": {}, "RETRIES": {"default": {"attempts": 3}}},
            }
        }
    ):
        problems = task_backends["default"].check()

    assert [problem.id for problem in problems] == ["jobs.E102", "jobs.E103", "jobs.W101"]


def test_an_allow_list_given_as_one_string_is_a_configuration_error():
    with conveyor_tasks(TASKS="tests.jobs.django_tasks.*"), pytest.raises(InvalidTaskBackend):
        task_backends["default"]


def test_a_task_off_the_allow_list_is_refused_at_enqueue(tenant):
    with conveyor_tasks(TASKS=["tests.jobs.django_tasks.add"], DEFAULT_TENANT=tenant.slug):
        allowed = django_tasks.add.enqueue(1, 2)
        with pytest.raises(InvalidTask, match="not on OPTIONS\\['TASKS'\\]"):
            django_tasks.fail.enqueue("x")

    assert list(Job.objects.values_list("pk", flat=True)) == [uuid.UUID(allowed.id)]


def test_a_task_on_the_allow_list_runs_in_a_process_that_never_enqueued_it(tenant, run_worker):
    name = "tests.jobs.django_tasks.only_on_the_allow_list"
    assert name not in {kind.name for kind in all_kinds()}

    job = enqueue_job(tenant=tenant, kind=name, payload={"args": ["Ada"]})
    run_worker()

    result = django_tasks.only_on_the_allow_list.get_result(str(job.pk))
    assert (result.status, result.return_value) == (SUCCESSFUL, "hello Ada")


@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        ("subprocess.run", "nor is it a Django task on an OPTIONS['TASKS'] allow-list"),
        ("tests/jobs/django_tasks.add", "nor is it a Django task"),
        ("tests.jobs.django_tasks.not_a_task", "not a Django task defined there"),
        ("tests.jobs.django_tasks.CALLS", "not a Django task defined there"),
        ("tests.jobs.django_tasks.missing", "could not be imported"),
        ("tests.jobs.django_tasks.no_such_module.task", "could not be imported"),
    ],
)
def test_only_django_tasks_on_the_allow_list_become_kinds(name, refusal):
    with pytest.raises(UnknownKind) as refused:
        get_kind(name)

    assert refusal in str(refused.value)


def test_the_standard_rqworker_imports_allowed_tasks_and_fails_the_rest_for_good(worker_process):
    ok = django_tasks.add.enqueue(20, 22)
    refused = django_tasks.not_allowed.enqueue()

    # Its own settings allow only `add` (tests/jobs/tasks_settings.py); rqworker takes
    # Django's --settings like any command.
    worker_process("default", "--settings=tests.jobs.tasks_settings")
    wait_for(lambda: all(job_of(r).is_finished for r in (ok, refused)), timeout=60)

    assert django_tasks.add.get_result(ok.id).return_value == 42
    failed = django_tasks.not_allowed.get_result(refused.id)
    assert (failed.status, job_of(refused).attempt) == (FAILED, 1)
    assert failed.errors[0].exception_class_path == "jobs.errors.UnknownKind"
    assert "allow-list" in failed.errors[0].traceback


def test_the_tenant_comes_from_the_call_then_options_then_context_then_default(tenant):
    context, configured, explicit = TenantFactory.create_batch(3)

    by_default = django_tasks.add.enqueue(1, 1)
    with tenant_context(context):
        by_context = django_tasks.add.enqueue(1, 1)
        with conveyor_tasks(TENANT=configured.slug):
            by_options = django_tasks.add.enqueue(1, 1)
            by_call = enqueue_for(explicit, django_tasks.add, 1, 1)

    assert [job_of(r).tenant for r in (by_default, by_context, by_options, by_call)] == [
        tenant,
        context,
        configured,
        explicit,
    ]


def test_without_any_tenant_enqueueing_fails_clearly():
    with conveyor_tasks(), pytest.raises(MissingTenant, match="No tenant for a task"):
        django_tasks.add.enqueue(1, 1)
    with conveyor_tasks(DEFAULT_TENANT="nobody"), pytest.raises(MissingTenant, match="'nobody'"):
        django_tasks.add.enqueue(1, 1)

    assert not Job.objects.exists()


def test_results_are_read_within_the_tenant_like_any_job(other_tenant):
    with tenant_context(other_tenant):
        result = django_tasks.add.enqueue(1, 1)
        theirs = django_tasks.add.get_result(result.id)

    with pytest.raises(TaskResultDoesNotExist):
        django_tasks.add.get_result(result.id)
    assert theirs.id == result.id


@pytest.mark.parametrize("result_id", ["not-a-uuid", str(uuid.uuid4())])
def test_an_id_of_no_job_is_no_task_result(result_id):
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(result_id)


def test_a_job_of_an_ordinary_kind_is_no_task_result(tenant):
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})

    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(str(job.pk))


def test_a_task_enqueued_by_a_running_task_belongs_to_the_same_tenant(other_tenant, run_worker):
    with tenant_context(other_tenant):
        result = django_tasks.enqueue_follow_up.enqueue(2, 3)

    run_worker()

    follow_up = Job.objects.get(pk=str(job_of(result).result))
    assert (follow_up.tenant, follow_up.kind, follow_up.status) == (
        other_tenant,
        "tests.jobs.django_tasks.add",
        Job.Status.SUCCEEDED,
    )
