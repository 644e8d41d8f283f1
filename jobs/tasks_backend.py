"""Django's Tasks API on Conveyor: every `.enqueue()` becomes a tracked, tenant-scoped `Job`.

A task's kind is its module path (`myapp.tasks.send_report`). It is registered when enqueued
in this process; a worker that has not seen it imports it only when the backend's
OPTIONS["TASKS"] allow-list covers the path, never because a row or Redis names it.
Setup, options and the status mapping: docs/django-tasks.md.
"""

from __future__ import annotations  # django.tasks' classes are generic only in their stubs

import hashlib
import json
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ValidationError
from django.db import transaction
from django.tasks import DEFAULT_TASK_QUEUE_NAME, Task, TaskContext, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import (
    InvalidTask,
    InvalidTaskBackend,
    TaskException,
    TaskResultDoesNotExist,
)
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json
from django.utils.module_loading import import_string
from rest_framework import serializers

from jobs.errors import JobCanceled, PermanentError, RetryableError, UnknownKind
from jobs.kinds import JobKind, get_kind, register_kind
from jobs.models import Job, JobLog, Priority
from jobs.runtime.context import JobContext
from jobs.services.jobs import enqueue_job
from jobs.transport import queueing
from tenants.models import Tenant

type AnyTask = Task[..., Any]
type AnyResult = TaskResult[..., Any]
type History = tuple[list[str], list[TaskError]]

OPTION_NAMES = ("TASKS", "TENANT", "DEFAULT_TENANT", "RETRIES", "IDEMPOTENCY")
RETRY_FIELDS = ("max_attempts", "backoff_base", "backoff_cap")
KEY_MAX_LENGTH = 200  # Job.idempotency_key
KIND_MAX_LENGTH = 100  # Job.kind
_TASK_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")

# Waiting statuses (pending, queued, scheduled, deferred, retrying) are Django's READY.
STATUSES: dict[str, TaskResultStatus] = {
    **dict.fromkeys(Job.WAITING, TaskResultStatus.READY),
    Job.Status.STARTED: TaskResultStatus.RUNNING,
    Job.Status.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    **dict.fromkeys((Job.Status.FAILED, Job.Status.CANCELED), TaskResultStatus.FAILED),
}
# What a task result's worker ids (one per attempt) and errors are read from.
_HISTORY_EVENTS = ("started", "retry_scheduled", "failed", "stopped", "rescued", "canceled")

_current_tenant: ContextVar[Tenant | str | None] = ContextVar("task_tenant", default=None)


class MissingTenant(TaskException):
    """A task's job needs a tenant, and none was given, configured or set in the context."""


@contextmanager
def tenant_context(tenant: Tenant | str | None) -> Iterator[None]:
    """Tasks enqueued, and results read, inside belong to `tenant` (a Tenant or its slug)."""
    token = _current_tenant.set(tenant)
    try:
        yield
    finally:
        _current_tenant.reset(token)


def enqueue_for[**P, R](
    tenant: Tenant | str, task: Task[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> TaskResult[P, R]:
    """`task.enqueue(*args, **kwargs)` for `tenant`, whatever the options or context say."""
    backend = task.get_backend()
    if not isinstance(backend, ConveyorBackend):
        raise InvalidTask(f"Task backend {task.backend!r} is not Conveyor's: it has no tenants.")
    return backend.enqueue(task, args, kwargs, tenant=tenant)


def conveyor_priority(priority: int) -> str:
    """Django's −100…100 as Conveyor's: 50 and up critical, 1–49 high, 0 normal, below 0 low."""
    if priority >= 50:
        return Priority.CRITICAL
    if priority > 0:
        return Priority.HIGH
    return Priority.NORMAL if priority == 0 else Priority.LOW


class TaskPayload(serializers.Serializer):
    """A task's job payload: the arguments of the call."""

    args = serializers.ListField(default=list)
    kwargs = serializers.DictField(default=dict)


@dataclass(frozen=True)
class TaskRunner:
    """A Django task as a kind's function `(ctx, *, args, kwargs)`, sending Django's signals."""

    task: AnyTask
    backend: str = field(compare=False)

    def __call__(self, ctx: JobContext, *, args: list[Any], kwargs: dict[str, Any]) -> Any:
        result = _task_result(ctx.job, self.task, backend=self.backend, history=_history(ctx.job))
        task_started.send(ConveyorBackend, task_result=result)
        try:
            with tenant_context(ctx.tenant):  # tasks it enqueues belong to its tenant
                value = normalize_json(self._call(result, args, kwargs))
        except Exception as error:
            _send_failed_attempt(result, ctx.job, error)
            raise
        object.__setattr__(result, "_return_value", value)
        _end(result, TaskResultStatus.SUCCESSFUL)
        task_finished.send(ConveyorBackend, task_result=result)
        return value

    def _call(self, result: AnyResult, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self.task.takes_context:
            return self.task.call(TaskContext(task_result=result), *args, **kwargs)
        return self.task.call(*args, **kwargs)


class ConveyorBackend(BaseTaskBackend):
    """Runs Django tasks as Conveyor jobs: tracked, prioritised, retried, tenant-scoped."""

    supports_defer = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        allowed = self.options.get("TASKS", ())
        if isinstance(allowed, str):
            raise InvalidTaskBackend(f"OPTIONS['TASKS'] of {alias!r} must be a list, not a str.")
        self.allowed = tuple(allowed)

    def validate_task(self, task: AnyTask) -> None:
        super().validate_task(task)
        if task.queue_name not in settings.CONVEYOR_QUEUES:
            raise InvalidTask(f"Queue '{task.queue_name}' is not a Conveyor queue.")
        if len(task.module_path) > KIND_MAX_LENGTH:
            raise InvalidTask(f"Task path is longer than {KIND_MAX_LENGTH} characters.")

    def enqueue[**P, R](
        self,
        task: Task[P, R],
        args: Any,
        kwargs: dict[str, Any],
        *,
        tenant: Tenant | str | None = None,
    ) -> TaskResult[P, R]:
        """Record the call as a job of the task's kind; any worker on its queue runs it."""
        self.validate_task(task)
        self._check_allowed(task.module_path)
        payload = {"args": normalize_json(args), "kwargs": normalize_json(kwargs)}
        json.dumps(payload, allow_nan=False)  # PostgreSQL's jsonb refuses NaN and infinities
        since = timezone.now()
        job = enqueue_job(
            tenant=self.resolve_tenant(tenant),
            kind=self._register(task),
            payload=payload,
            priority=conveyor_priority(task.priority),
            queue=task.queue_name,
            run_at=task.run_after,
            timeout=settings.CONVEYOR_QUEUES[task.queue_name]["timeout"],
            max_attempts=self._retries(task).get("max_attempts", 1),
            idempotency_key=self._idempotency_key(task, payload),
        )
        if job.created_at < since:  # an active job with the same idempotency key
            return _task_result(job, task, backend=self.alias, history=_history(job))
        enqueued = _task_result(job, task, backend=self.alias)
        transaction.on_commit(lambda: task_enqueued.send(type(self), task_result=enqueued))
        return enqueued

    def get_result(self, result_id: str, *, tenant: Tenant | str | None = None) -> AnyResult:
        """The result as the task's job row tells it, looked up within the resolved tenant."""
        job = _find_job(result_id, self.resolve_tenant(tenant))
        runner = _runner_of(job.kind) if job else None
        if job is None or runner is None:
            raise TaskResultDoesNotExist(result_id)
        return _task_result(job, runner.task, backend=self.alias, history=_history(job))

    def resolve_tenant(self, tenant: Tenant | str | None = None) -> Tenant:
        """Per call, else OPTIONS["TENANT"], else `tenant_context()`, else "DEFAULT_TENANT"."""
        chosen = (
            tenant
            or self.options.get("TENANT")
            or _current_tenant.get()
            or self.options.get("DEFAULT_TENANT")
        )
        if isinstance(chosen, Tenant):
            return chosen
        if not chosen:
            raise MissingTenant(
                f"No tenant for a task of backend {self.alias!r}: pass tenant=, enqueue inside "
                "jobs.tasks_backend.tenant_context(), or set OPTIONS['TENANT'] or "
                "OPTIONS['DEFAULT_TENANT']."
            )
        found = Tenant.objects.filter(slug=chosen).first()
        if found is None:
            raise MissingTenant(f"There is no tenant {chosen!r} for tasks of {self.alias!r}.")
        return found

    def allows(self, path: str) -> bool:
        """Whether OPTIONS["TASKS"] covers `path`: a glob (`myapp.tasks.*`) or a module prefix."""
        if not _TASK_PATH.fullmatch(path):
            return False
        return any(
            fnmatchcase(path, entry) or path.startswith(f"{entry}.") for entry in self.allowed
        )

    def resolve_kind(self, name: str) -> JobKind | None:
        """The kind of an allow-listed task path, importing its module; None when not allowed."""
        if not self.allows(name):
            return None
        try:
            found = import_string(name)
        except Exception as error:  # an allowed module that cannot load fails its jobs for good
            raise UnknownKind(
                f"Task {name!r} is allowed but could not be imported: {error}"
            ) from error
        if not isinstance(found, Task) or found.module_path != name:
            raise UnknownKind(
                f"{name!r} is on the allow-list but is not a Django task defined there."
            )
        return self._register(found)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        return [*self._check_queues(), *self._check_options()]

    def _check_allowed(self, path: str) -> None:
        if not self.allows(path):
            raise InvalidTask(
                f"Task {path!r} is not on OPTIONS['TASKS'] of task backend {self.alias!r}, so "
                "workers would refuse it: add its path, its module or a pattern like 'app.tasks.*'."
            )

    def _register(self, task: AnyTask) -> JobKind:
        """The task's kind, registered now, as its module declares it: the same in every process."""
        declared = _declared(task)
        retries = self._retries(declared)
        queue = declared.queue_name
        queue = queue if queue in settings.CONVEYOR_QUEUES else DEFAULT_TASK_QUEUE_NAME
        return register_kind(
            JobKind(
                name=declared.module_path,
                func=TaskRunner(task=declared, backend=self.alias),
                queue=queue,
                # On the allow-list, so tenants' agents may enqueue it by name, unless it runs on
                # an operator-only queue.
                public=queue not in settings.CONVEYOR_TENANT_LIMITS["operator_queues"],
                max_attempts=retries.get("max_attempts", 1),
                backoff_base=retries.get("backoff_base"),
                backoff_cap=retries.get("backoff_cap"),
                payload=TaskPayload,
                description=(declared.func.__doc__ or "").strip().split("\n")[0],
            )
        )

    def _option(self, name: str, task: AnyTask) -> Any:
        """OPTIONS[name] for the task: its entry by path, else by queue name, else "*"."""
        table = self.options.get(name) or {}
        for key in (task.module_path, task.queue_name, "*"):
            if key in table:
                return table[key]
        return None

    def _retries(self, task: AnyTask) -> dict[str, Any]:
        return self._option("RETRIES", task) or {}

    def _idempotency_key(self, task: AnyTask, payload: dict[str, Any]) -> str:
        """From OPTIONS["IDEMPOTENCY"]: True keys on all arguments, a string formats them."""
        rule = self._option("IDEMPOTENCY", task)
        if not rule:
            return ""
        if rule is True:
            arguments = json.dumps(payload, sort_keys=True, separators=(",", ":"))
            return f"args:{hashlib.sha256(arguments.encode()).hexdigest()}"
        try:
            key = str(rule).format(*payload["args"], **payload["kwargs"])
        except (LookupError, AttributeError, ValueError) as error:
            raise InvalidTask(
                f"IDEMPOTENCY {rule!r} does not fit the arguments: {error!r}"
            ) from None
        if not 0 < len(key) <= KEY_MAX_LENGTH:
            raise InvalidTask(f"IDEMPOTENCY {rule!r} made a key of {len(key)} characters.")
        return key

    def _check_queues(self) -> list[checks.CheckMessage]:
        unknown = sorted(self.queues - set(settings.CONVEYOR_QUEUES))
        if not unknown:
            return []
        message = f"Task backend {self.alias!r} lists queues Conveyor lacks: {', '.join(unknown)}."
        return [checks.Error(message, hint="Use CONVEYOR_QUEUES names.", id="jobs.E101")]

    def _check_options(self) -> list[checks.CheckMessage]:
        problems: list[checks.CheckMessage] = []
        if unknown := sorted(set(self.options) - set(OPTION_NAMES)):
            message = f"Task backend {self.alias!r} has unknown OPTIONS {unknown}."
            problems.append(checks.Error(message, hint=f"Known: {OPTION_NAMES}", id="jobs.E102"))
        for key, entry in (self.options.get("RETRIES") or {}).items():
            if not isinstance(entry, dict) or set(entry) - set(RETRY_FIELDS):
                message = f"OPTIONS['RETRIES'][{key!r}] of {self.alias!r} takes {RETRY_FIELDS}."
                problems.append(checks.Error(message, id="jobs.E103"))
        if not self.allowed:
            message = f"Task backend {self.alias!r} has no OPTIONS['TASKS']: it refuses every task."
            problems.append(checks.Warning(message, id="jobs.W101"))
        return problems


def _declared(task: AnyTask) -> AnyTask:
    """The task as its module defines it; `.using()` copies share its function."""
    module = sys.modules.get(task.func.__module__)
    declared = getattr(module, task.func.__qualname__, None)
    return declared if isinstance(declared, Task) and declared.func is task.func else task


def _find_job(result_id: str, tenant: Tenant) -> Job | None:
    try:
        return Job.objects.for_tenant(tenant).filter(pk=result_id).first()
    except ValidationError:  # not a UUID
        return None


def _runner_of(kind_name: str) -> TaskRunner | None:
    try:
        func = get_kind(kind_name).func
    except UnknownKind:
        return None
    return func if isinstance(func, TaskRunner) else None


def _task_result[**P, R](
    job: Job, task: Task[P, R], *, backend: str, history: History | None = None
) -> TaskResult[P, R]:
    worker_ids, errors = history or ([], [])
    result = TaskResult(
        task=task,
        id=str(job.pk),
        status=STATUSES[job.status],
        enqueued_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        last_attempted_at=job.started_at,
        args=job.payload.get("args", []),
        kwargs=job.payload.get("kwargs", {}),
        backend=backend,
        errors=errors,
        worker_ids=worker_ids,
    )
    if job.status == Job.Status.SUCCEEDED:
        object.__setattr__(result, "_return_value", job.result)
    return result


def _history(job: Job) -> History:
    """One worker id per attempt and one error per failed attempt, read from the job's log."""
    started: list[str] = []
    errors: list[TaskError] = []
    logs = JobLog.objects.filter(job=job, event__in=_HISTORY_EVENTS)
    for event, message, data in logs.values_list("event", "message", "data"):
        if event == JobLog.Event.STARTED:
            started.append(str(data.get("worker", "")))
        else:
            errors.append(_logged_error(event, message, data))
    # A retry by hand starts counting attempts again; earlier runs keep their errors.
    recent = started[-job.attempt :] if job.attempt else []
    return [job.worker_name] * (job.attempt - len(recent)) + recent, errors


def _logged_error(event: str, message: str, data: dict[str, Any]) -> TaskError:
    if event == JobLog.Event.CANCELED:
        return TaskError(exception_class_path=_class_path(JobCanceled), traceback=message)
    if event in (JobLog.Event.STOPPED, JobLog.Event.RESCUED):
        return TaskError(exception_class_path=_class_path(RetryableError), traceback=message)
    text = data.get("traceback") or message
    raised = raised_class_path(message.split(":", 1)[0], text)
    return TaskError(exception_class_path=raised, traceback=text)


def raised_class_path(name: str, text: str) -> str:
    """The dotted path of the exception class `name` that a formatted traceback ends with.

    Python writes the class with its module (`myapp.errors.Boom: …`), builtins bare.
    """
    if not name.isidentifier():
        return "builtins.Exception"
    lines = re.findall(rf"^((?:\w+\.)*{re.escape(name)})(?::|$)", text, flags=re.MULTILINE)
    path = lines[-1] if lines else name
    return path if "." in path else f"builtins.{path}"


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _send_failed_attempt(result: AnyResult, job: Job, error: Exception) -> None:
    """task_finished for an attempt that raised: FAILED when no retry follows, else READY."""
    text = "".join(traceback.format_exception(error))
    result.errors.append(TaskError(exception_class_path=_class_path(type(error)), traceback=text))
    final = (
        isinstance(error, PermanentError | JobCanceled)
        or job.attempt >= job.max_attempts
        or queueing.is_cancel_requested(job)
    )
    _end(result, TaskResultStatus.FAILED if final else TaskResultStatus.READY)
    task_finished.send(ConveyorBackend, task_result=result)


def _end(result: AnyResult, status: TaskResultStatus) -> None:
    object.__setattr__(result, "status", status)
    ended = None if status == TaskResultStatus.READY else timezone.now()
    object.__setattr__(result, "finished_at", ended)
