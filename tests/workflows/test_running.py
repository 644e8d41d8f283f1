"""Workflows run by real workers: results passed down, edges, conditions, fan-out and fan-in,
cancel, retry, and one end however the steps end."""

from jobs.models import Job
from jobs.transport import queueing
from tests.workers import wait_for
from tests.workflows.conftest import results, statuses
from tests.workflows.kinds import FLAKY_KEY
from workflows.models import Workflow, WorkflowStep
from workflows.services.running import cancel_workflow, retry_failed_steps


def step(name, kind="jobs.noop", payload=None, **extra):
    return {"name": name, "kind": kind, "payload": payload or {}, **extra}


FAIL = {"permanent": True, "message": "bounced"}


def test_a_diamond_passes_results_down_and_ends_succeeded(start, run_workflow):
    workflow = start(
        [
            step("lookup", payload={"email": "ann@example.com", "n": 2}),
            step("left", payload={"n": "{{ steps.lookup.result.n }}"}, needs=["lookup"]),
            step(
                "right",
                payload={"to": "Hi {{ steps.lookup.result.email|upper }}"},
                needs=["lookup"],
            ),
            step(
                "join",
                "tests.parents",
                {"email": "{{ steps.lookup.result.email }}", "who": "{{ input.who }}"},
                needs=["left", "right"],
            ),
        ],
        input={"who": "Ann"},
    )

    run_workflow(workflow)

    assert workflow.status == Workflow.Status.SUCCEEDED
    assert (workflow.done, workflow.total) == (4, 4)
    found = results(workflow)
    assert found["left"] == {"n": 2}  # a whole reference keeps its type
    assert found["right"] == {"to": "Hi ANN@EXAMPLE.COM"}
    assert found["join"] == {
        "payload": {"email": "ann@example.com", "who": "Ann"},
        "parents": {"left": {"n": 2}, "right": {"to": "Hi ANN@EXAMPLE.COM"}},
    }


def test_a_fan_out_of_a_hundred_meets_in_an_all_and_an_any_fan_in(start, run_workflow):
    branches = [step(f"b{i}", payload={"i": i}, needs=["root"]) for i in range(100)]
    names = [branch["name"] for branch in branches]
    workflow = start(
        [
            step("root"),
            *branches,
            step("all", "tests.parents", needs=names),
            step("first", needs=names, join="any"),
        ]
    )

    run_workflow(workflow, timeout=60)

    assert workflow.status == Workflow.Status.SUCCEEDED
    assert workflow.done == workflow.total == 103
    gathered = results(workflow)["all"]["parents"]
    assert gathered == {f"b{i}": {"i": i} for i in range(100)}
    first = WorkflowStep.objects.get(workflow=workflow, name="first")
    assert first.status == WorkflowStep.Status.SUCCEEDED
    assert Job.objects.filter(idempotency_key__startswith=workflow.job_key_prefix).count() == 103


def test_each_edge_follows_its_parents_outcome(start, run_workflow):
    workflow = start(
        [
            step("send", "jobs.fail", FAIL),
            step("then", needs=["send"]),
            step("sms", needs=[{"step": "send", "when": "on_failure"}]),
            step("log", needs=[{"step": "send", "when": "always"}]),
            step("after_then", needs=["then"]),
            step("after_then_always", needs=[{"step": "then", "when": "always"}]),
        ]
    )

    run_workflow(workflow)

    assert statuses(workflow) == {
        "send": "failed",
        "then": "skipped",
        "sms": "succeeded",
        "log": "succeeded",
        "after_then": "skipped",  # a skipped parent lets only `always` through
        "after_then_always": "succeeded",
    }
    assert workflow.status == Workflow.Status.SUCCEEDED  # the failure was handled
    skipped = WorkflowStep.objects.get(workflow=workflow, name="then")
    assert skipped.reason == "Skipped: send failed, its edge is on_success."


def test_a_false_condition_skips_its_branch_and_a_true_one_runs(start, run_workflow):
    workflow = start(
        [
            step("score", payload={"score": 40, "tags": ["vip"]}),
            step(
                "high",
                needs=["score"],
                condition=[{"field": "steps.score.result.score", "op": "gte", "value": 50}],
            ),
            step("after_high", needs=["high"]),
            step(
                "vip",
                needs=["score"],
                condition=[{"field": "steps.score.result.tags", "op": "contains", "value": "vip"}],
            ),
        ]
    )

    run_workflow(workflow)

    assert statuses(workflow) == {
        "score": "succeeded",
        "high": "skipped",
        "after_high": "skipped",
        "vip": "succeeded",
    }
    assert workflow.status == Workflow.Status.SUCCEEDED
    high = WorkflowStep.objects.get(workflow=workflow, name="high")
    assert "steps.score.result.score gte 50" in high.reason
    assert high.job is None  # never a job


def test_an_unhandled_failure_fails_the_workflow_and_runs_its_callback_once(
    start, run_workflow, tenant
):
    workflow = start(
        [step("a"), step("b", "jobs.fail", FAIL, needs=["a"]), step("c", needs=["b"])],
        on_end={"kind": "tests.collect", "payload": {"note": "done"}},
    )

    run_workflow(workflow)
    callback = Job.objects.get(kind="tests.collect")
    run_workflow(workflow)  # runs the callback

    assert workflow.status == Workflow.Status.FAILED
    assert statuses(workflow) == {"a": "succeeded", "b": "failed", "c": "skipped"}
    callback.refresh_from_db()
    assert callback.result == {"note": "done", "workflow_id": str(workflow.pk), "status": "failed"}
    assert workflow.on_end_job_id == callback.pk
    assert Job.objects.filter(kind="tests.collect").count() == 1


def test_a_payload_that_renders_wrong_fails_its_step_without_a_job(start, run_workflow):
    workflow = start(
        [
            step("a", payload={"x": 1}),
            step("b", "jobs.sleep", {"seconds": "{{ steps.a.result.x }}x"}, needs=["a"]),
        ]
    )

    run_workflow(workflow)

    b = WorkflowStep.objects.get(workflow=workflow, name="b")
    assert (b.status, b.job) == (WorkflowStep.Status.FAILED, None)
    assert "seconds" in b.reason
    assert workflow.status == Workflow.Status.FAILED


def test_cancel_mid_run_stops_the_running_step_and_every_waiting_one(
    start, run_workflow, worker_process, tenant
):
    workflow = start(
        [
            step("a"),
            step("slow", "jobs.sleep", {"seconds": 30, "steps": 300}, needs=["a"]),
            step("b", needs=["slow"]),
            step("c", needs=["b"]),
        ]
    )
    worker_process("default")
    slow = WorkflowStep.objects.get(workflow=workflow, name="slow")
    wait_for(lambda: Job.objects.filter(workflow_step__pk=slow.pk, status="started").exists())

    canceled = cancel_workflow(workflow)
    wait_for(lambda: WorkflowStep.objects.get(pk=slow.pk).status == "canceled")

    assert canceled.status == Workflow.Status.CANCELED
    assert statuses(workflow) == {
        "a": "succeeded",
        "slow": "canceled",
        "b": "canceled",
        "c": "canceled",
    }
    workflow.refresh_from_db()
    assert workflow.done == workflow.total
    assert Job.objects.get(workflow_step__pk=slow.pk).status == Job.Status.CANCELED
    assert cancel_workflow(workflow).status == Workflow.Status.CANCELED  # again: no change


def test_retry_runs_the_failed_steps_again_and_the_graph_goes_on(start, run_workflow):
    workflow = start(
        [
            step("a"),
            step("flaky", "tests.flaky", needs=["a"]),
            step("next", needs=["flaky"]),
            step("other", needs=["a"]),
        ],
        on_end={"kind": "tests.collect"},
    )
    run_workflow(workflow)
    assert workflow.status == Workflow.Status.FAILED
    first_job = WorkflowStep.objects.get(workflow=workflow, name="flaky").job_id
    queueing.connection().set(FLAKY_KEY, 1)

    retry_failed_steps(workflow)
    run_workflow(workflow)

    assert workflow.status == Workflow.Status.SUCCEEDED
    assert set(statuses(workflow).values()) == {"succeeded"}
    flaky = WorkflowStep.objects.get(workflow=workflow, name="flaky")
    assert flaky.job_id == first_job  # the same job, given fresh attempts
    assert Job.objects.filter(kind="tests.collect").count() == 2  # one per end
