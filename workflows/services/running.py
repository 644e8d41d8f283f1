"""Running workflows: submit a graph, advance it as its steps' jobs end, cancel, retry.

Every step is an ordinary job of its kind (same retries, limits, priorities, fairness), created
when the step is ready and keyed `workflow:<id>:<step>`. The engine tells us jobs ended through
`jobs.signals.jobs_finished` (those recorded together, together); that key is how we know a job
is a step's, without a query.

Each change to a workflow's steps happens under its row lock (taken by settling the steps),
so concurrent step ends see each other's outcomes in order, and the one that ends the last step
ends the workflow: its `on_end` job and the `workflow.finished` event are written in that same
transaction, once. A step end the signal missed (its worker died between the commit and the
signal) is found by `reconcile_workflows`.
"""

import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import serializers

from communications.services.events import publish_event
from jobs.errors import InvalidTransition, UnknownKind
from jobs.models import Job
from jobs.services.inserts import copy_rows
from jobs.services.jobs import cancel_job, enqueue_job, enqueue_jobs, retry_job
from tenants.models import Tenant
from tenants.users import Actor, acting_user
from workflows.conditions import describe, holds
from workflows.graph import StepSpec, check_graph, has_template, offered_kind
from workflows.models import Automation, Edge, Join, Workflow, WorkflowStep
from workflows.rendering import RenderError, render_payload

logger = logging.getLogger(__name__)

KEY_PREFIX = "workflow:"
END_KIND_PAYLOAD = {"workflow_id": "", "status": ""}
# What each edge lets through, by the parent's final status.
EDGE_HOLDS: dict[str, set[str]] = {
    Edge.ON_SUCCESS: {WorkflowStep.Status.SUCCEEDED},
    Edge.ON_FAILURE: {WorkflowStep.Status.FAILED, WorkflowStep.Status.CANCELED},
    Edge.ALWAYS: set(WorkflowStep.ENDED),
}
STEP_STATUS: dict[str, str] = {
    Job.Status.SUCCEEDED: WorkflowStep.Status.SUCCEEDED,
    Job.Status.FAILED: WorkflowStep.Status.FAILED,
    Job.Status.CANCELED: WorkflowStep.Status.CANCELED,
}


def check_on_end(on_end: Any) -> tuple[str, dict[str, Any]]:
    """The callback kind and payload, checked as the kind will get them."""
    if not on_end:
        return "", {}
    if not isinstance(on_end, dict) or not isinstance(on_end.get("kind"), str):
        raise serializers.ValidationError({"on_end": ['Give {"kind": …, "payload": {…}}.']})
    payload = on_end.get("payload") or {}
    try:
        kind = offered_kind(on_end["kind"])
        kind.validate({**payload, **END_KIND_PAYLOAD})
    except UnknownKind as error:
        raise serializers.ValidationError({"on_end": {"kind": [str(error)]}}) from None
    except serializers.ValidationError as error:
        raise serializers.ValidationError({"on_end": {"payload": error.detail}}) from None
    return kind.name, payload


@transaction.atomic
def start_workflow(
    *,
    tenant: Tenant,
    name: str,
    steps: Any,
    input: dict[str, Any] | None = None,
    on_end: dict[str, Any] | None = None,
    by: Actor = None,
    automation: Automation | None = None,
    trigger_job: Job | None = None,
) -> Workflow:
    """Check the whole graph, write the workflow and its steps, and start the steps that are ready.

    Bad input raises a ValidationError naming the step and field; nothing is written then.
    """
    specs = check_graph(steps)
    on_end_kind, on_end_payload = check_on_end(on_end)
    if not isinstance(input or {}, dict):
        raise serializers.ValidationError({"input": ["The input is a JSON object."]})
    workflow = Workflow.objects.create(
        tenant=tenant,
        name=name,
        input=input or {},
        total=len(specs),
        on_end_kind=on_end_kind,
        on_end_payload=on_end_payload,
        automation=automation,
        trigger_job=trigger_job,
        created_by=acting_user(by),
    )
    rows = _rows(workflow, specs)
    copy_rows(WorkflowStep, rows)
    ids = dict(WorkflowStep.objects.filter(workflow=workflow).values_list("name", "pk"))
    for row in rows:
        row.pk = ids[row.name]
    _start_ready(workflow, rows, rows, by)
    _finish_if_done(workflow)
    logger.info("workflow=%s tenant=%s started: %s steps", workflow.pk, tenant.pk, len(specs))
    return workflow


def _rows(workflow: Workflow, specs: list[StepSpec]) -> list[WorkflowStep]:
    dependents: dict[str, list[str]] = {spec.name: [] for spec in specs}
    for spec in specs:
        for parent in spec.parents:
            dependents[parent].append(spec.name)
    return [
        WorkflowStep(
            workflow=workflow,
            name=spec.name,
            position=position,
            kind=spec.kind,
            payload=spec.payload,
            delay=spec.delay,
            needs=spec.needs,
            join=spec.join,
            condition=spec.condition,
            dependents=dependents[spec.name],
            parents_left=len(spec.needs),
        )
        for position, spec in enumerate(specs)
    ]


# --- Deciding steps -----------------------------------------------------------------------------
#
# Each step counts its parents down as they end (`parents_left`), so a step's end touches only
# its own children: a fan-in of a thousand costs one row per parent, not the whole graph. All of
# it happens under the workflow's row lock, so the counts never race. The steps a pass decides
# to run are enqueued together, one COPY per kind and delay.


@dataclass(frozen=True)
class _Child:
    """A parent's edge to a step that needs it, with what deciding that step takes."""

    name: str
    when: str
    join: str
    parents: int

    def verdict(self, parent: WorkflowStep, left: int) -> bool | str | None:
        """Once `parent` ended with `left` parents still to end: True to run the waiting child,
        a reason to skip it, or None while it waits for others."""
        passed = parent.status in EDGE_HOLDS[self.when]
        if self.join == Join.ANY:
            if passed:
                return True
            return "no parent's edge holds" if left == 0 else None
        if not passed:
            return f"{parent.name} {parent.status}, its edge is {self.when}"
        return True if left == 0 else None


# Each workflow's edges by parent, per process: a graph never changes once submitted, so one
# read per workflow spares every parent's end reading its children's `needs` (a fan-in's holds
# every parent).
_EDGES: OrderedDict[str, dict[str, tuple[_Child, ...]]] = OrderedDict()
_EDGES_KEPT = 256


def _children(workflow_id: Any, parent: str) -> tuple[_Child, ...]:
    key = str(workflow_id)
    edges = _EDGES.get(key)
    if edges is None:
        found: dict[str, list[_Child]] = {}
        steps = WorkflowStep.objects.filter(workflow_id=workflow_id).exclude(needs=[])
        for name, needs, join in steps.values_list("name", "needs", "join"):
            for need in needs:
                found.setdefault(need["step"], []).append(
                    _Child(name, need["when"], join, len(needs))
                )
        edges = _EDGES[key] = {step: tuple(children) for step, children in found.items()}
        if len(_EDGES) > _EDGES_KEPT:
            _EDGES.popitem(last=False)
    return edges.get(parent, ())


class _Pass:
    """One advance of a workflow: steps to run, steps that ended, what templates read."""

    def __init__(self, workflow: Workflow, by: Actor) -> None:
        self._workflow = workflow
        self.by = by
        self.to_run: list[WorkflowStep] = []
        self.ended: list[WorkflowStep] = []
        self._data: dict[str, Any] | None = None

    @property
    def workflow(self) -> Workflow:
        return _loaded(self._workflow)

    def data(self) -> dict[str, Any]:
        """`input` and each ended step's status and result (read once per pass)."""
        if self._data is None:
            ended = WorkflowStep.objects.filter(
                workflow=self.workflow, status__in=WorkflowStep.ENDED
            )
            rows = ended.values_list("name", "status", "job__result")
            self._data = {
                "input": self.workflow.input,
                "steps": {name: {"status": st, "result": result} for name, st, result in rows},
            }
        return self._data

    def decide(self, step: WorkflowStep, verdict: bool | str) -> None:
        """Run `step` (True, if its condition holds) or skip it (a reason)."""
        if verdict is True and step.condition and not holds(step.condition, self.data()):
            verdict = f"its condition is false: {describe(step.condition)}"
        if verdict is True:
            self.to_run.append(step)
        else:
            _settle(step, WorkflowStep.Status.SKIPPED, f"Skipped: {verdict}.")
            self.ended.append(step)

    def decide_children(
        self, parents: list[WorkflowStep], counted: Iterable[tuple[Any, ...]]
    ) -> None:
        """Decide the waiting children that the ends of `parents` settle; `counted` holds each
        child's (id, name, status, parents_left) as counting them off left it."""
        edges: dict[str, list[tuple[_Child, WorkflowStep]]] = {}
        for parent in parents:
            for edge in _children(parent.workflow_id, parent.name):
                edges.setdefault(edge.name, []).append((edge, parent))
        verdicts: dict[int, bool | str] = {}
        for child_id, name, status, left in counted:
            if status != WorkflowStep.Status.WAITING:
                continue
            verdict = _together(
                edges[name][0][0].join, [e.verdict(p, left) for e, p in edges[name]]
            )
            if verdict is not None:
                verdicts[child_id] = verdict
        if verdicts:
            for step in WorkflowStep.objects.filter(pk__in=verdicts).order_by("position"):
                self.decide(step, verdicts[step.pk])


def _together(join: str, verdicts: list[bool | str | None]) -> bool | str | None:
    """A child's verdict from its parents that ended at once: for `any`, one edge that holds
    runs it; for `all`, one that does not skips it."""
    if join == Join.ANY and True in verdicts:
        return True
    reasons = [verdict for verdict in verdicts if isinstance(verdict, str)]
    if reasons:
        return reasons[0]
    return True if True in verdicts else None


def _advance(ctx: _Pass, ended: list[WorkflowStep]) -> None:
    """Count ended steps off their children, run or skip those it settles, and go on with the
    steps that end here, till nothing is left to decide; the caller holds the workflow's lock
    and counted `ended` done."""
    queue = [step for step in ended if step.dependents]
    while True:
        if ctx.ended:
            _add_done(ctx._workflow, len(ctx.ended))
            queue += [step for step in ctx.ended if step.dependents]
            ctx.ended, ctx._data = [], None
        if queue:
            _count_off(queue.pop(0), ctx)
        elif ctx.to_run:
            _run(ctx)
        else:
            return


_COUNT_OFF_SQL = f"""
UPDATE {WorkflowStep._meta.db_table} SET parents_left = GREATEST(parents_left - 1, 0)
WHERE workflow_id = %(workflow)s AND name = ANY(%(names)s)
RETURNING id, name, status, parents_left
"""


def _count_off(parent: WorkflowStep, ctx: _Pass) -> None:
    names = [child.name for child in _children(parent.workflow_id, parent.name)]
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_OFF_SQL, {"workflow": parent.workflow_id, "names": names})
        counted = cursor.fetchall()
    ctx.decide_children([parent], counted)


def _start_ready(
    workflow: Workflow, candidates: list[WorkflowStep], steps: list[WorkflowStep], by: Actor
) -> None:
    """Decide the waiting candidates none of whose parents is still to end (roots, retried
    steps); `steps` are all the workflow's."""
    ctx = _Pass(workflow, by)
    by_name = {step.name: step for step in steps}
    for step in candidates:
        if step.status == WorkflowStep.Status.WAITING and step.parents_left == 0:
            ctx.decide(step, _verdict(step, by_name))
    _advance(ctx, [])


def _add_done(workflow: Workflow, count: int) -> None:
    if count:
        Workflow.objects.filter(pk=workflow.pk).update(done=F("done") + count)
        workflow.done += count


def _verdict(step: WorkflowStep, steps: dict[str, WorkflowStep]) -> bool | str:
    """For a step whose parents have all ended: True to run it, else why it is skipped."""
    outcomes = [
        (need, steps[need["step"]].status in EDGE_HOLDS[need["when"]]) for need in step.needs
    ]
    if step.join == Join.ANY and outcomes:
        return True if any(passed for _, passed in outcomes) else "no parent's edge holds"
    failing = [need for need, passed in outcomes if not passed]
    if failing:
        need = failing[0]
        return f"{need['step']} {steps[need['step']].status}, its edge is {need['when']}"
    return True


def _run(ctx: _Pass) -> None:
    """Enqueue the pass's steps to run, one COPY per kind and delay; a step whose payload does
    not render or validate fails without a job."""
    steps, ctx.to_run = ctx.to_run, []
    groups: dict[tuple[str, int], list[tuple[WorkflowStep, dict[str, Any]]]] = {}
    for step in steps:
        try:
            payload = step.payload
            if has_template(payload):
                payload = render_payload(payload, tenant=ctx.workflow.tenant, data=ctx.data())
            payload = offered_kind(step.kind).validate(payload)
        except (RenderError, UnknownKind) as error:
            _fail_unstarted(step, str(error), ctx)
        except serializers.ValidationError as error:
            _fail_unstarted(step, f"the payload {error.detail}", ctx)
        else:
            groups.setdefault((step.kind, step.delay), []).append((step, payload))
    for (kind, delay), members in groups.items():
        jobs = enqueue_jobs(
            tenant=ctx.workflow.tenant,
            kind=kind,
            payloads=[payload for _, payload in members],
            by=ctx.by,
            delay=delay or None,
            idempotency_keys=[f"{ctx.workflow.job_key_prefix}{step.name}" for step, _ in members],
        )
        for (step, _), job in zip(members, jobs, strict=True):
            step.job, step.status, step.reason = job, WorkflowStep.Status.RUNNING, ""
        with connection.cursor() as cursor:
            cursor.execute(
                _RUNNING_SQL,
                {"ids": [step.pk for step, _ in members], "jobs": [job.pk for job in jobs]},
            )


_RUNNING_SQL = f"""
UPDATE {WorkflowStep._meta.db_table} AS step SET status = 'running', reason = '', job_id = ran.job
FROM unnest(%(ids)s::bigint[], %(jobs)s::uuid[]) AS ran (id, job)
WHERE step.id = ran.id
"""


def _fail_unstarted(step: WorkflowStep, why: str, ctx: _Pass) -> None:
    _settle(step, WorkflowStep.Status.FAILED, f"Not started: {why}")
    ctx.ended.append(step)


def _settle(step: WorkflowStep, status: str, reason: str) -> None:
    step.status, step.reason, step.finished_at = status, reason[:500], timezone.now()
    step.save(update_fields=["status", "reason", "finished_at"])


# --- Hearing from the engine --------------------------------------------------------------------


def step_jobs_finished(sender: Any, *, jobs: list[Job], **kwargs: Any) -> None:
    """`jobs_finished` receiver: the steps whose jobs ended move on, each workflow's together."""
    ends: dict[str, list[tuple[str, Any, str]]] = {}
    for job in jobs:
        if job.idempotency_key.startswith(KEY_PREFIX):
            _, workflow_id, name = job.idempotency_key.split(":", 2)
            ends.setdefault(workflow_id, []).append((name, job.pk, job.status))
    for workflow_id, steps in ends.items():
        try:
            record_step_ends(workflow_id, steps)
        except Exception:
            # Those steps stay running for reconcile_workflows; other workflows go on.
            logger.exception("workflow=%s: %s step end(s) not recorded", workflow_id, len(steps))


_WORKFLOW, _STEP = Workflow._meta.db_table, WorkflowStep._meta.db_table

# Commits without waiting for the WAL flush, as the runner's bookkeeping does: a database crash
# may forget a step's end, which `reconcile_workflows` then settles again.
_NO_FSYNC = "settings AS (SELECT set_config('synchronous_commit', 'off', true))"

# Steps' ends in one statement: lock the workflow (every change to its steps does), settle the
# steps that still run those jobs, count them off their children and count them done; the
# children as counted are returned for the caller to decide. `%(quiet)s` lets the statement
# stand alone as its own transaction, so it changes nothing unless nothing else has to change
# with it: the workflow runs and a step is left to end, every step still ran its job, and these
# ends decide no child.
#
# The steps and children are read FOR UPDATE because the statement's snapshot was taken before
# the lock wait: locking a row reads it as the step end that held the lock last left it.
_END_SQL = f"""
WITH {_NO_FSYNC}, ended AS (
    SELECT * FROM unnest(%(names)s::text[], %(jobs)s::uuid[], %(statuses)s::text[])
        AS ended (name, job, status)
), edge AS (
    SELECT * FROM unnest(%(parents)s::text[], %(children)s::text[], %(passed)s::boolean[])
        AS edge (parent, child, passed)
), locked AS (
    SELECT id, status FROM {_WORKFLOW}
    WHERE id = %(workflow)s
        AND (NOT %(quiet)s OR (status = 'running' AND done + %(count)s < total))
    FOR UPDATE
), steps AS (
    SELECT step.id, step.name, ended.status
    FROM {_STEP} AS step JOIN ended ON step.name = ended.name AND step.job_id = ended.job
    WHERE step.workflow_id = (SELECT id FROM locked) AND step.status = 'running'
    FOR UPDATE OF step
), counts AS (
    SELECT edge.child AS name, count(*) AS ended, bool_or(edge.passed) AS some_passed,
        bool_and(edge.passed) AS all_passed
    FROM edge JOIN steps ON steps.name = edge.parent
    GROUP BY edge.child
), children AS (
    SELECT child.id, child.status, child."join", child.parents_left, counts.*
    FROM {_STEP} AS child JOIN counts ON child.name = counts.name
    WHERE child.workflow_id = (SELECT id FROM locked WHERE status = 'running')
    FOR UPDATE OF child
), decided AS (
    SELECT FROM children
    WHERE status = 'waiting' AND (
        parents_left <= ended
        OR ("join" = 'any' AND some_passed)
        OR ("join" = 'all' AND NOT all_passed)
    )
), settled AS (
    UPDATE {_STEP} AS step SET status = steps.status, finished_at = %(now)s
    FROM steps
    WHERE step.id = steps.id AND NOT (%(quiet)s AND (
        EXISTS (SELECT FROM decided) OR (SELECT count(*) FROM steps) < %(count)s
    ))
    RETURNING step.id, step.name
), counted AS (
    UPDATE {_STEP} AS child SET parents_left = GREATEST(child.parents_left - children.ended, 0)
    FROM children
    WHERE child.id = children.id AND EXISTS (SELECT FROM settled)
    RETURNING child.id, child.name, child.status, child.parents_left
), workflow AS (
    UPDATE {_WORKFLOW} SET done = done + (SELECT count(*) FROM settled)
    FROM settings
    WHERE {_WORKFLOW}.id = %(workflow)s AND EXISTS (SELECT FROM settled)
    RETURNING {_WORKFLOW}.status, {_WORKFLOW}.done, {_WORKFLOW}.total,
        (SELECT array_agg(name) FROM settled) AS settled
)
SELECT workflow.*, counted.* FROM workflow LEFT JOIN counted ON true
"""

# A step's end: its name, its job's id, the step's status from the job's.
_StepEnd = tuple[str, Any, str]


def _end_sql(workflow_id: Any, ends: list[_StepEnd], *, quiet: bool) -> list[tuple[Any, ...]]:
    edges = [
        (name, child.name, status in EDGE_HOLDS[child.when])
        for name, _, status in ends
        for child in _children(workflow_id, name)
    ]
    params = {
        "workflow": workflow_id,
        "quiet": quiet,
        "now": timezone.now(),
        "count": len(ends),
        "names": [name for name, _, _ in ends],
        "jobs": [job for _, job, _ in ends],
        "statuses": [status for _, _, status in ends],
        "parents": [parent for parent, _, _ in edges],
        "children": [child for _, child, _ in edges],
        "passed": [passed for _, _, passed in edges],
    }
    with connection.cursor() as cursor:
        cursor.execute(_END_SQL, params)
        return cursor.fetchall()


def _may_stand_alone(workflow_id: Any, ends: list[_StepEnd]) -> bool:
    """False when these ends are sure to decide a child (one is its only parent), so that the
    statement on its own would change nothing."""
    return not any(
        child.parents == 1 for name, _, _ in ends for child in _children(workflow_id, name)
    )


def record_step_end(workflow_id: Any, name: str, *, job_id: Any, job_status: str) -> bool:
    """Settle the step whose job ended and advance the workflow; False if already settled."""
    return record_step_ends(workflow_id, [(name, job_id, job_status)]) == 1


def record_step_ends(workflow_id: Any, ends: Sequence[tuple[str, Any, str]]) -> int:
    """Settle the steps of one workflow whose jobs ended — (name, job id, job status) each —
    and advance it; returns how many were settled here (not already).

    Ends that decide no child and leave a step to end are one statement; others lock the
    workflow in a transaction that also decides the children and, at the last, ends it.
    """
    known = [
        (name, job, STEP_STATUS[status]) for name, job, status in ends if status in STEP_STATUS
    ]
    if not known:
        return 0
    if _may_stand_alone(workflow_id, known) and _end_sql(workflow_id, known, quiet=True):
        return len(known)
    with transaction.atomic():
        rows = _end_sql(workflow_id, known, quiet=False)
        if not rows:
            return 0
        workflow_status, done, total, settled = rows[0][:4]
        if workflow_status != Workflow.Status.RUNNING:
            return len(settled)
        # Read in full only if a child is decided or the workflow ends (see _loaded).
        workflow = Workflow(id=workflow_id, status=workflow_status, done=done, total=total)
        workflow._state.adding = False
        ctx = _Pass(workflow, None)
        parents = [
            WorkflowStep(workflow=workflow, name=name, status=status)
            for name, _, status in known
            if name in settled
        ]
        ctx.decide_children(parents, [row[4:] for row in rows if row[4] is not None])
        _advance(ctx, [])
        _finish_if_done(workflow)
    return len(settled)


def _loaded(workflow: Workflow) -> Workflow:
    """`workflow` with every field: a stub of id and counts is read now."""
    if workflow.tenant_id is None:
        workflow.refresh_from_db()
    return workflow


def _finish_if_done(workflow: Workflow) -> None:
    if workflow.done < workflow.total:
        return
    _loaded(workflow)
    steps = WorkflowStep.objects.filter(workflow=workflow).only("name", "status", "needs")
    _end(workflow, _outcome(steps))


def _outcome(steps: Iterable[WorkflowStep]) -> str:
    """Failed if a step failed (or was canceled) and no step handles it with on_failure/always."""
    handled = {
        need["step"]
        for step in steps
        for need in step.needs
        if need["when"] in (Edge.ON_FAILURE, Edge.ALWAYS)
    }
    unhandled = [
        step.name
        for step in steps
        if step.status in (WorkflowStep.Status.FAILED, WorkflowStep.Status.CANCELED)
        and step.name not in handled
    ]
    return Workflow.Status.FAILED if unhandled else Workflow.Status.SUCCEEDED


def _end(workflow: Workflow, status: str) -> None:
    """End the workflow once: the conditional update lets only the first caller through."""
    now = timezone.now()
    ended = Workflow.objects.filter(pk=workflow.pk, status=Workflow.Status.RUNNING).update(
        status=status, finished_at=now
    )
    if not ended:
        return
    workflow.status, workflow.finished_at = status, now
    if workflow.on_end_kind:
        workflow.on_end_job = enqueue_job(
            tenant=workflow.tenant,
            kind=workflow.on_end_kind,
            payload={**workflow.on_end_payload, "workflow_id": str(workflow.pk), "status": status},
            idempotency_key=f"workflow-end:{workflow.pk}",
        )
        Workflow.objects.filter(pk=workflow.pk).update(on_end_job=workflow.on_end_job)
    publish_event(workflow.tenant, "workflow.finished", {"workflow": finished_data(workflow)})
    logger.info("workflow=%s tenant=%s %s", workflow.pk, workflow.tenant_id, status)


def finished_data(workflow: Workflow) -> dict[str, Any]:
    """The workflow as the `workflow.finished` event carries it."""
    return {
        "id": str(workflow.pk),
        "name": workflow.name,
        "status": workflow.status,
        "input": workflow.input,
        "total": workflow.total,
        "done": workflow.done,
        "automation": str(workflow.automation_id) if workflow.automation_id else None,
        "created_at": workflow.created_at.isoformat(),
        "finished_at": workflow.finished_at.isoformat() if workflow.finished_at else None,
    }


# --- Cancel and retry ---------------------------------------------------------------------------


@transaction.atomic
def cancel_workflow(workflow: Workflow, *, by: Actor = None) -> Workflow:
    """Stop every step not yet ended and end the workflow canceled; again changes nothing."""
    workflow = Workflow.objects.select_for_update().select_related("tenant").get(pk=workflow.pk)
    if workflow.status == Workflow.Status.CANCELED:
        return workflow
    if workflow.status != Workflow.Status.RUNNING:
        raise InvalidTransition(f"Workflow {workflow.pk} already {workflow.status}.")
    steps = WorkflowStep.objects.filter(workflow=workflow)
    stopped = {"status": WorkflowStep.Status.CANCELED, "reason": "The workflow was canceled."}
    ended = steps.filter(status=WorkflowStep.Status.WAITING).update(
        **stopped, finished_at=timezone.now()
    )
    running = Job.objects.filter(workflow_step__in=steps.filter(status="running"))
    for job in running.filter(status__in=Job.CANCELABLE):
        # A waiting job is canceled now; a started one stops at its next checkpoint and its
        # step settles when the engine says it ended.
        if cancel_job(job, by=by).status == Job.Status.CANCELED:
            ended += steps.filter(job=job, status=WorkflowStep.Status.RUNNING).update(
                **stopped, finished_at=timezone.now()
            )
    Workflow.objects.filter(pk=workflow.pk).update(done=F("done") + ended)
    workflow.done += ended
    _end(workflow, Workflow.Status.CANCELED)
    return workflow


@transaction.atomic
def retry_failed_steps(workflow: Workflow, *, by: Actor = None) -> Workflow:
    """Run the failed and canceled steps again and let the graph go on from them."""
    workflow = Workflow.objects.select_for_update().select_related("tenant").get(pk=workflow.pk)
    if workflow.status not in (Workflow.Status.FAILED, Workflow.Status.CANCELED):
        raise InvalidTransition(
            f"Workflow {workflow.pk} is {workflow.status}: "
            "only failed or canceled workflows are retried."
        )
    steps = {step.name: step for step in workflow.steps.select_related("job")}
    again = [s for s in steps.values() if s.status in (s.Status.FAILED, s.Status.CANCELED)]
    reopened = _descendants(again, steps)
    for step in again:
        if step.job is not None and step.job.status in Job.RETRYABLE:
            retry_job(step.job, by=by)
            step.status = WorkflowStep.Status.RUNNING
        elif step.job is not None and step.job.status in Job.ACTIVE:
            step.status = WorkflowStep.Status.RUNNING  # its end is still to come
        else:
            step.status = WorkflowStep.Status.WAITING
    for step in reopened:
        step.status = WorkflowStep.Status.WAITING
    changed = again + reopened
    for step in changed:
        step.reason, step.finished_at = "", None
    for step in steps.values():
        step.parents_left = sum(
            steps[need["step"]].status not in WorkflowStep.ENDED for need in step.needs
        )
    WorkflowStep.objects.bulk_update(
        list(steps.values()), ["status", "reason", "finished_at", "parents_left"]
    )
    workflow.status, workflow.finished_at = Workflow.Status.RUNNING, None
    workflow.done = sum(step.status in WorkflowStep.ENDED for step in steps.values())
    workflow.save(update_fields=["status", "finished_at", "done"])
    _start_ready(workflow, changed, list(steps.values()), by)
    _finish_if_done(workflow)
    logger.info("workflow=%s retried %s steps", workflow.pk, len(again))
    return workflow


def _descendants(roots: list[WorkflowStep], steps: dict[str, WorkflowStep]) -> list[WorkflowStep]:
    """Skipped or canceled steps below `roots`: they are decided again once the roots end."""
    names = {step.name for step in roots}
    found: list[WorkflowStep] = []
    changed = True
    while changed:
        changed = False
        for step in steps.values():
            if step.name in names or step.status not in (
                WorkflowStep.Status.SKIPPED,
                WorkflowStep.Status.CANCELED,
            ):
                continue
            if any(need["step"] in names for need in step.needs):
                names.add(step.name)
                found.append(step)
                changed = True
    return found


# --- Steps whose end was not heard ------------------------------------------------------------


def reconcile_workflows(*, settle_seconds: float = 30, limit: int = 1000) -> int:
    """Settle steps still `running` whose job ended `settle_seconds` ago or more: the signal
    never reached the workflow (its worker died between the commit and the signal). Returns how
    many were settled; each workflow still ends once."""
    cutoff = timezone.now() - timedelta(seconds=settle_seconds)
    stale = WorkflowStep.objects.filter(
        status=WorkflowStep.Status.RUNNING,
        job__status__in=Job.FINISHED,
        job__finished_at__lte=cutoff,
    ).values_list("workflow_id", "name", "job_id", "job__status")
    settled = 0
    for workflow_id, name, job_id, job_status in stale[:limit]:
        settled += record_step_end(workflow_id, name, job_id=job_id, job_status=job_status)
    if settled:
        logger.warning("reconcile_workflows: settled %s step(s) whose end was not heard", settled)
    return settled


# --- What a step's body reads -------------------------------------------------------------------


def parent_results(job: Job) -> dict[str, Any] | None:
    """A step's parents' results by step name (`ctx.parent_results`); None for other jobs."""
    if not job.idempotency_key.startswith(KEY_PREFIX):
        return None
    _, workflow_id, name = job.idempotency_key.split(":", 2)
    step = WorkflowStep.objects.filter(workflow_id=workflow_id, name=name).first()
    if step is None:
        return None
    parents = WorkflowStep.objects.filter(
        workflow_id=workflow_id, name__in=[need["step"] for need in step.needs]
    )
    return dict(parents.values_list("name", "job__result"))
