"""Job engine fixtures: committed transactions and the test kinds; workers are in tests.workers."""

import pytest

import tests.jobs.kinds  # noqa: F401 (registers the test kinds)
from tests.workers import (  # noqa: F401 (re-exported for the engine tests)
    BASE_DIR,
    _worker_env,
    kill_machine,
    release_due_jobs,
    status_of,
    wait_for,
)


@pytest.fixture(autouse=True)
def _committed(transactional_db: None) -> None:
    """Engine tests commit for real: on_commit hooks run and worker processes see the rows."""
