"""Workflows run by real workers: results passed down, edges, conditions, fan-out and fan-in."""

from django.core import mail

from jobs.models import Job
from workflows.models import Workflow
from tests.workflows.conftest import results, statuses


def test_a_diamond_passes_results_down_and_ends_succeeded(start, run_workflow):
    workflow = start(
        [
            {"name": "lookup", "kind": "jobs.noop", "payload": {"email": "ann@example.com", "n": 2}},
            {"name": "left", "kind": "jobs.noop", "payload": {"n": "{{ steps.lookup.result.n }}"}, "needs": ["lookup"]},
            {"name": "right", "kind": "jobs.noop", "payload": {"to": "Hi {{ steps.lookup.result.email|upper }}"}, "needs": ["lookup"]},
            {"name": "join", "kind": "tests.parents", "payload": {"email": "{{ steps.lookup.result.email }}"}, "needs": ["left", "right"]},
        ]
    )

    run_workflow(workflow)

    assert workflow.status == Workflow.Status.SUCCEEDED
    assert (workflow.done, workflow.total) == (4, 4)
    found = results(workflow)
    assert found["left"] == {"n": 2}
    assert found["right"] == {"to": "Hi ANN@EXAMPLE.COM"}
    assert found["join"] == {
        "payload": {"email": "ann@example.com"},
        "parents": {"left": {"n": 2}, "right": {"to": "Hi ANN@EXAMPLE.COM"}},
    }
