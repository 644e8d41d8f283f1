"""A workflow ends exactly once however its workers die: rescued steps, unheard ends."""

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from django.core.management import call_command
from django.db import connection

from communications.models import WebhookDelivery
from communications.services.webhooks import create_endpoint
from jobs.models import Job
from jobs.runtime.reconciler import reconcile
from jobs.signals import jobs_finished
from tests.workers import kill_machine, wait_for
from tests.workflows.conftest import statuses
from workflows.models import Workflow, WorkflowStep
from workflows.services.running import (
    reconcile_workflows,
    record_step_end,
    record_step_ends,
    step_jobs_finished,
)

RECEIVER = "workflows.step_jobs_finished"


def test_a_worker_killed_mid_workflow_is_rescued_and_the_workflow_ends_once(
    tenant, start, worker_process, settings
):
    settings.CONVEYOR_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    create_endpoint(tenant=tenant, url="http://127.0.0.1:9/hook", event_types=["workflow.finished"])
    workflow = start(
        [
            {"name": "a", "kind": "jobs.noop"},
            {
                "name": "slow",
                "kind": "tests.record_then_sleep",
                "payload": {"seconds": 60},
                "needs": ["a"],
            },
            {"name": "b", "kind": "jobs.noop", "needs": ["slow"]},
        ],
        on_end={"kind": "jobs.noop", "payload": {"end": True}},
    )
    victim = worker_process("default", heartbeat=1, heartbeat_grace=2)
    slow = WorkflowStep.objects.get(workflow=workflow, name="slow")
    wait_for(lambda: Job.objects.filter(workflow_step__pk=slow.pk, status="started").exists())

    kill_machine(victim)
    worker_process("default", heartbeat=1, heartbeat_grace=2)

    def rescued_and_ended() -> bool:
        reconcile(settle_seconds=0, overdue_seconds=0)
        workflow.refresh_from_db()
        return workflow.status != Workflow.Status.RUNNING

    wait_for(rescued_and_ended, timeout=90, every=0.5)

    assert workflow.status == Workflow.Status.SUCCEEDED
    assert statuses(workflow) == {"a": "succeeded", "slow": "succeeded", "b": "succeeded"}
    assert workflow.done == workflow.total == 3
    assert Job.objects.get(workflow_step__pk=slow.pk).attempt == 2
    assert Job.objects.filter(kind="jobs.noop", payload__end=True).count() == 1
    assert WebhookDelivery.objects.filter(event_type="workflow.finished").count() == 1


def test_a_step_end_that_was_not_heard_is_settled_by_the_reconciler(
    start, run_workflow, run_worker
):
    workflow = start(
        [{"name": "a", "kind": "jobs.noop"}, {"name": "b", "kind": "jobs.noop", "needs": ["a"]}]
    )
    # As if the worker died between the job's commit and the signal.
    jobs_finished.disconnect(dispatch_uid=RECEIVER)
    try:
        run_worker()
    finally:
        jobs_finished.connect(step_jobs_finished, dispatch_uid=RECEIVER)
    unheard = statuses(workflow)

    left = reconcile_workflows(settle_seconds=60)
    call_command("reconcile_workflows", "--settle-seconds", "0")
    again = reconcile_workflows(settle_seconds=0)
    run_workflow(workflow)

    assert unheard == {"a": "running", "b": "waiting"}
    assert (left, again) == (0, 0)
    assert workflow.status == Workflow.Status.SUCCEEDED
    assert statuses(workflow) == {"a": "succeeded", "b": "succeeded"}


def test_parents_ending_at_once_decide_each_fan_in_once(start):
    names = [f"p{i}" for i in range(120)]
    workflow = start(
        [
            *({"name": name, "kind": "jobs.noop"} for name in names),
            {"name": "all", "kind": "jobs.noop", "needs": names},
            {"name": "any", "kind": "jobs.noop", "needs": names, "join": "any"},
            {"name": "last", "kind": "jobs.noop", "needs": [names[-1]]},
        ]
    )
    jobs = dict(workflow.steps.filter(name__in=names).values_list("name", "job_id"))
    Job.objects.filter(pk__in=jobs.values()).update(status=Job.Status.SUCCEEDED)
    threads = 8
    together = Barrier(threads)

    def end(first: int) -> int:
        together.wait()
        try:
            # Each end twice, as a rescue may repeat it.
            return sum(
                record_step_end(workflow.pk, name, job_id=jobs[name], job_status="succeeded")
                for name in names[first::threads] * 2
            )
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        settled = sum(pool.map(end, range(threads)))

    workflow.refresh_from_db()
    children = workflow.steps.filter(name__in=["all", "any", "last"])
    assert settled == workflow.done == 120
    assert set(children.values_list("status", "parents_left")) == {("running", 0)}
    assert Job.objects.filter(idempotency_key__startswith=workflow.job_key_prefix).count() == 123


def test_steps_ending_together_decide_their_children_as_if_one_after_another(start):
    workflow = start(
        [
            {"name": "a", "kind": "jobs.noop"},
            {"name": "b", "kind": "jobs.noop"},
            {"name": "c", "kind": "jobs.noop"},
            {"name": "d", "kind": "jobs.noop"},
            {"name": "all_ab", "kind": "jobs.noop", "needs": ["a", "b"]},
            {"name": "any_ab", "kind": "jobs.noop", "needs": ["b", "a"], "join": "any"},
            {"name": "all_cd", "kind": "jobs.noop", "needs": ["c", "d"]},
            {"name": "after_c", "kind": "jobs.noop", "needs": [{"step": "c", "when": "always"}]},
        ]
    )
    jobs = dict(workflow.steps.filter(job__isnull=False).values_list("name", "job_id"))
    ends = [
        ("a", jobs["a"], Job.Status.FAILED),
        ("b", jobs["b"], Job.Status.SUCCEEDED),
        ("c", jobs["c"], Job.Status.CANCELED),
    ]

    settled = record_step_ends(workflow.pk, ends)
    again = record_step_ends(workflow.pk, ends)

    workflow.refresh_from_db()
    assert (settled, again, workflow.done) == (3, 0, 5)
    assert statuses(workflow) == {
        "a": "failed",
        "b": "succeeded",
        "c": "canceled",
        "d": "running",
        "all_ab": "skipped",
        "any_ab": "running",
        "all_cd": "skipped",
        "after_c": "running",
    }
    skipped = dict(workflow.steps.filter(status="skipped").values_list("name", "reason"))
    assert skipped == {
        "all_ab": "Skipped: a failed, its edge is on_success.",
        "all_cd": "Skipped: c canceled, its edge is on_success.",
    }


def test_steps_ending_together_that_decide_nothing_are_one_statement(
    start, django_assert_num_queries
):
    names = ["a", "b", "c"]
    workflow = start(
        [
            *({"name": name, "kind": "jobs.noop"} for name in names),
            {"name": "last", "kind": "jobs.noop"},
            {"name": "join", "kind": "jobs.noop", "needs": [*names, "last"]},
        ]
    )
    jobs = dict(workflow.steps.filter(job__isnull=False).values_list("name", "job_id"))
    record_step_end(workflow.pk, "last", job_id=jobs["last"], job_status="succeeded")

    with django_assert_num_queries(1):
        settled = record_step_ends(workflow.pk, [(n, jobs[n], "succeeded") for n in names[:2]])

    join = workflow.steps.get(name="join")
    assert (settled, join.status, join.parents_left) == (2, "waiting", 1)
