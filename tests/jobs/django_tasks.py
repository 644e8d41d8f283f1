"""Plain Django tasks for the tests of jobs.tasks_backend: nothing in them knows of Conveyor."""

from collections import Counter
from typing import Any

from django.tasks import TaskContext, task

CALLS: Counter[str] = Counter()


class ReportFailed(Exception):
    """Raised on purpose by the tasks below."""


@task
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@task
def describe(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Hand back what it was called with."""
    return {"args": list(args), "kwargs": kwargs}


@task
def fail(message: str) -> None:
    """Always fail, with a class of this module."""
    raise ReportFailed(message)


@task
def flaky(key: str, *, failures: int) -> int:
    """Fail the first `failures` calls made with `key`, then return how many calls it took."""
    CALLS[key] += 1
    if CALLS[key] <= failures:
        raise ConnectionError(f"call {CALLS[key]} of {key} failed")
    return CALLS[key]


@task(takes_context=True)
def attempt_number(context: TaskContext, *, succeed_on: int) -> int:
    """Fail until attempt `succeed_on`, then return the attempt number."""
    if context.attempt < succeed_on:
        raise ReportFailed(f"attempt {context.attempt} is too early")
    return context.attempt


@task
def enqueue_follow_up(a: int, b: int) -> str:
    """Enqueue `add` from inside a worker and return its result id."""
    return add.enqueue(a, b).id


@task
def not_json() -> object:
    """Return something JSON cannot hold."""
    return object()


@task
def only_on_the_allow_list(name: str) -> str:
    """Never enqueued in the test process: workers find it through the allow-list."""
    return f"hello {name}"


@task
def not_allowed() -> None:
    """Never on an allow-list."""


def not_a_task() -> None:
    """A plain function on an allowed path."""
