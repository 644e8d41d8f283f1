"""Step kinds for the workflow tests: one hands back what its parents returned."""

from typing import Any

from jobs.kinds import job_kind
from jobs.runtime.context import JobContext


@job_kind("tests.parents", queue="default")
def parents(ctx: JobContext, **payload: Any) -> dict[str, Any]:
    """Return the payload and `ctx.parent_results`."""
    return {"payload": payload, "parents": ctx.parent_results}
