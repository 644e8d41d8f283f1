"""Workflow fixtures: committed transactions (workers and on_commit hooks see the rows)."""

from collections.abc import Callable
from typing import Any

import pytest

import tests.jobs.kinds
import tests.workflows.kinds  # noqa: F401 (registers the test kinds)
from tenants.models import Tenant
from workflows.models import Workflow
from workflows.services.running import start_workflow


@pytest.fixture(autouse=True)
def _committed(transactional_db: None) -> None:
    """Workflows advance after commits: run each test's transactions for real."""


@pytest.fixture
def start(tenant: Tenant) -> Callable[..., Workflow]:
    def submit(steps: list[dict[str, Any]], **options: Any) -> Workflow:
        return start_workflow(
            tenant=tenant, name=options.pop("name", "test"), steps=steps, **options
        )

    return submit


@pytest.fixture
def run_workflow(work_until: Callable[..., None]) -> Callable[[Workflow], Workflow]:
    """Drain the queues with an in-process worker until the workflow has ended."""

    def run(workflow: Workflow, *, timeout: float = 30) -> Workflow:
        def ended() -> bool:
            workflow.refresh_from_db()
            return workflow.status != Workflow.Status.RUNNING

        work_until(ended, timeout=timeout)
        return workflow

    return run


def statuses(workflow: Workflow) -> dict[str, str]:
    return dict(workflow.steps.values_list("name", "status"))


def results(workflow: Workflow) -> dict[str, Any]:
    return dict(workflow.steps.values_list("name", "job__result"))
