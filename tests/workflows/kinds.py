"""Step kinds for the workflow tests: one hands back what its parents returned."""

from typing import Any

from jobs.errors import PermanentError
from jobs.kinds import job_kind
from jobs.runtime.context import JobContext
from jobs.transport import queueing


@job_kind("tests.parents", queue="default", public=True)
def parents(ctx: JobContext, **payload: Any) -> dict[str, Any]:
    """Return the payload and `ctx.parent_results`."""
    return {"payload": payload, "parents": ctx.parent_results}


FLAKY_KEY = "tests:workflows:flaky-ok"


@job_kind("tests.flaky", queue="default", max_attempts=1, public=True)
def flaky(ctx: JobContext, **payload: Any) -> dict[str, Any]:
    """Fail for good until the test sets FLAKY_KEY in Redis, then succeed."""
    if not queueing.connection().exists(FLAKY_KEY):
        raise PermanentError("not yet")
    return {"ok": True}
