"""The kind registry: `@job_kind` turns a function into a named, configured job type.

Django tasks become kinds at run time (`register_kind`, from `jobs.tasks_backend`): when
enqueued in this process, or when a task backend's allow-list lets `get_kind` resolve them.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.tasks import task_backends
from rest_framework import serializers

from jobs.errors import UnknownKind
from tenants.models import Role

if TYPE_CHECKING:
    from jobs.models import Job

# One encoder for every payload (`json.dumps(cls=…)` builds a new one per call).
_ENCODER = DjangoJSONEncoder()

# How the delay before the next attempt grows: exponential with full jitter (the default: spreads
# a crowd of retries), exponential without jitter (base, 2·base, 4·base…), or a fixed list of
# delays (the last repeats).
JITTERED = "jittered"
EXPONENTIAL = "exponential"
Backoff = str | tuple[float, ...]

_KINDS: dict[str, "JobKind"] = {}
_ALIASES: dict[str, str] = {}  # an earlier name of a kind → its name


@dataclass(frozen=True)
class JobKind:
    """A registered job type and its defaults; None means "the queue's default"."""

    name: str
    func: Callable[..., Any]
    queue: str
    timeout: int | None = None
    max_attempts: int | None = None
    backoff_base: float | None = None
    backoff_cap: float | None = None
    rate_limit: str | None = None
    concurrency: int | None = None
    payload: type[serializers.Serializer] | None = None
    description: str = ""
    # The priority its jobs get unless the caller names one: transactional kinds above bulk.
    priority: str = "normal"
    # Called with the job once it has ended (succeeded, failed or canceled), after the commit:
    # how a workload's own row learns the outcome, whatever ended the job.
    on_end: "Callable[[Job], None] | None" = None
    # Earlier names of the kind: jobs recorded under them still run as this kind.
    aliases: tuple[str, ...] = ()
    backoff: Backoff = JITTERED
    # Times a job may snooze (`ctx.snooze`) without using an attempt; None: the setting.
    max_snoozes: int | None = None
    # Defaults of the enqueue options of the same names (see `enqueue_job`).
    unique_for: timedelta | None = None
    debounce: timedelta | None = None
    throttle: timedelta | None = None
    # Whether tenants may enqueue and schedule it themselves (API and admin), and the lowest
    # role that may; internal kinds are started only by the product's own services.
    public: bool = False
    role: str = Role.AGENT

    @property
    def queue_spec(self) -> dict[str, Any]:
        return settings.CONVEYOR_QUEUES[self.queue]

    @property
    def default_timeout(self) -> int:
        return self.timeout or self.queue_spec["timeout"]

    @property
    def default_max_attempts(self) -> int:
        return self.max_attempts or self.queue_spec["max_attempts"]

    @property
    def base_delay(self) -> float:
        return (
            self.backoff_base if self.backoff_base is not None else settings.CONVEYOR_BACKOFF_BASE
        )

    @property
    def max_delay(self) -> float:
        return self.backoff_cap if self.backoff_cap is not None else settings.CONVEYOR_BACKOFF_CAP

    @property
    def snooze_limit(self) -> int:
        return self.max_snoozes if self.max_snoozes is not None else settings.CONVEYOR_MAX_SNOOZES

    def delay_before(self, attempt: int, spread: Callable[[float], float]) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based), by the kind's backoff."""
        if isinstance(self.backoff, tuple):
            return min(self.backoff[min(attempt, len(self.backoff)) - 1], self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return spread(ceiling) if self.backoff == JITTERED else ceiling

    @property
    def tenant_concurrency(self) -> int | None:
        return self.concurrency or self.queue_spec.get("tenant_concurrency")

    def validate(self, payload: Any) -> dict[str, Any]:
        """The payload as the kind will receive it; raises DRF ValidationError with field errors."""
        if not isinstance(payload, dict):
            raise serializers.ValidationError({"payload": ["The payload must be a JSON object."]})
        if self.payload is not None:
            checked = self.payload(data=payload)
            checked.is_valid(raise_exception=True)
            payload = dict(checked.validated_data)
        try:
            return json.loads(_ENCODER.encode(payload))
        except (TypeError, ValueError) as error:
            raise serializers.ValidationError({"payload": [f"Not JSON: {error}"]}) from error

    def payload_schema(self) -> dict[str, Any]:
        """Field names with their type and whether they are required, for listings and docs."""
        if self.payload is None:
            return {}
        return {
            name: {
                "type": type(field).__name__.removesuffix("Field").lower(),
                "required": field.required,
            }
            for name, field in self.payload().fields.items()
        }


def job_kind(
    name: str,
    *,
    queue: str = "default",
    timeout: int | None = None,
    max_attempts: int | None = None,
    backoff_base: float | None = None,
    backoff_cap: float | None = None,
    rate_limit: str | None = None,
    concurrency: int | None = None,
    payload: type[serializers.Serializer] | None = None,
    on_end: "Callable[[Job], None] | None" = None,
    aliases: tuple[str, ...] = (),
    priority: str = "normal",
    backoff: str | Sequence[float] = JITTERED,
    max_snoozes: int | None = None,
    unique_for: timedelta | None = None,
    debounce: timedelta | None = None,
    throttle: timedelta | None = None,
    public: bool = False,
    role: str = Role.AGENT,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated `func(ctx, **payload)` as the kind `name`.

    `on_end(job)` is called once a job of the kind has ended, however it ended (its body's
    outcome, a cancel while it waited, a rescue after its worker died). `backoff` is
    "jittered" (exponential with full jitter), "exponential" or a list of delays in seconds;
    `unique_for`, `debounce` and `throttle` are the defaults of `enqueue_job`'s options.
    `public=True` lets tenants' members with `role` or higher enqueue and schedule it; a kind is
    internal by default, and a kind on an operator-only queue (`maintenance`) is never public.
    """
    if queue not in settings.CONVEYOR_QUEUES:
        raise ImproperlyConfigured(f"Kind {name!r} names an unknown queue {queue!r}.")
    if public and queue in settings.CONVEYOR_TENANT_LIMITS["operator_queues"]:
        raise ImproperlyConfigured(f"Kind {name!r} runs on {queue!r}: it cannot be public.")
    if role not in Role.values:
        raise ImproperlyConfigured(f"Kind {name!r} names an unknown role {role!r}.")
    if priority not in settings.CONVEYOR_PRIORITIES:
        raise ImproperlyConfigured(f"Kind {name!r} names an unknown priority {priority!r}.")
    style = _backoff(name, backoff)
    windows = [window for window in (unique_for, debounce, throttle) if window is not None]
    if len(windows) > 1:
        raise ImproperlyConfigured(f"Kind {name!r}: choose one of unique_for, debounce, throttle.")
    if any(window.total_seconds() <= 0 for window in windows):
        raise ImproperlyConfigured(f"Kind {name!r}: a window must be longer than zero.")

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        existing = _KINDS.get(name)
        if existing and getattr(existing.func, "__qualname__", None) != func.__qualname__:
            raise ImproperlyConfigured(f"Two job kinds are named {name!r}.")
        _KINDS[name] = JobKind(
            name=name,
            func=func,
            queue=queue,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            rate_limit=rate_limit,
            concurrency=concurrency,
            payload=payload,
            description=(func.__doc__ or "").strip().split("\n")[0],
            on_end=on_end,
            aliases=aliases,
            priority=priority,
            backoff=style,
            max_snoozes=max_snoozes,
            unique_for=unique_for,
            debounce=debounce,
            throttle=throttle,
            public=public,
            role=role,
        )
        for alias in aliases:
            _ALIASES[alias] = name
        return func

    return register


def _backoff(name: str, backoff: str | Sequence[float]) -> Backoff:
    if isinstance(backoff, str):
        if backoff not in (JITTERED, EXPONENTIAL):
            raise ImproperlyConfigured(
                f"Kind {name!r}: backoff is {JITTERED!r}, {EXPONENTIAL!r} or a list of delays."
            )
        return backoff
    delays = tuple(float(delay) for delay in backoff)
    if not delays or any(delay < 0 for delay in delays):
        raise ImproperlyConfigured(f"Kind {name!r}: give at least one delay, none negative.")
    return delays


def register_kind(kind: JobKind) -> JobKind:
    """Register a kind made at run time (a Django task); the same function again replaces it."""
    existing = _KINDS.get(kind.name)
    if existing is not None and existing.func != kind.func:
        raise ImproperlyConfigured(f"Two job kinds are named {kind.name!r}.")
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> JobKind:
    kind = _KINDS.get(_ALIASES.get(name, name))
    if kind is not None:
        return kind
    resolvers = _task_resolvers()
    for resolve in resolvers:
        if (kind := resolve(name)) is not None:
            return kind
    hint = " (nor is it a Django task on an OPTIONS['TASKS'] allow-list)" if resolvers else ""
    raise UnknownKind(f"No job kind is registered as {name!r}{hint}.")


def _task_resolvers() -> list[Callable[[str], JobKind | None]]:
    """`resolve_kind` of each django.tasks backend that has one (jobs.tasks_backend's).

    Each decides which task paths it may import; nothing here imports a name it is given.
    """
    found = (getattr(backend, "resolve_kind", None) for backend in task_backends.all())
    return [resolve for resolve in found if resolve is not None]


def all_kinds() -> list[JobKind]:
    return sorted(_KINDS.values(), key=lambda kind: kind.name)


def public_kinds(role: str | None = None) -> list[JobKind]:
    """The kinds tenants may enqueue and schedule (those `role` may, when given)."""
    return [
        kind
        for kind in all_kinds()
        if kind.public and (role is None or Role.rank(role) >= Role.rank(kind.role))
    ]


def rerun_refusal(name: str, *, role: str | None) -> str:
    """Why a member with `role` may not run a job of kind `name` again by hand ("" if they may).

    Retrying a job (or moving its next attempt to now) runs its kind once more on the member's
    command, so it asks what enqueueing asks: a public kind needs its `role`. An internal kind
    runs again only as the engine runs it by itself (its attempts, the reconciler, the product's
    own services) or when an operator retries it.
    """
    try:
        kind = get_kind(name)
    except UnknownKind:
        return f"{name!r} is not a registered kind: only operators retry its jobs."
    if not kind.public:
        return f"{kind.name!r} is internal: the product runs it again itself, operators by hand."
    if role is None or Role.rank(role) < Role.rank(kind.role):
        return f"Running {kind.name!r} again needs the {kind.role} role or higher; yours is {role}."
    return ""


def tenant_option_errors(
    kind: JobKind,
    *,
    role: str | None,
    queue: str | None = None,
    priority: str | None = None,
    timeout: int | None = None,
    max_attempts: int | None = None,
) -> dict[str, list[str]]:
    """Why a tenant may not run `kind` with these options, by field ({} when it may).

    `role` is the member's role (None: the tenant itself, as a schedule runs); queues, priorities,
    timeouts and attempts are shared by every tenant, so settings bound what one may choose.
    """
    limits = settings.CONVEYOR_TENANT_LIMITS
    errors: dict[str, list[str]] = {}
    if not kind.public:
        errors["kind"] = [
            f"{kind.name!r} is internal: the product starts it itself. See GET /api/v1/kinds/."
        ]
    elif role is not None and Role.rank(role) < Role.rank(kind.role):
        errors["kind"] = [f"{kind.name!r} needs the {kind.role} role or higher; yours is {role}."]
    if queue and queue != kind.queue and queue in limits["operator_queues"]:
        errors["queue"] = [f"The {queue!r} queue is for the platform's own work."]
    if priority and priority not in limits["priorities"]:
        allowed = ", ".join(limits["priorities"])
        errors["priority"] = [f"Choose one of {allowed}: {priority!r} is for operators."]
    if timeout is not None and timeout > limits["max_timeout"]:
        errors["timeout"] = [f"Ensure this value is less than or equal to {limits['max_timeout']}."]
    if max_attempts is not None and max_attempts > limits["max_attempts"]:
        errors["max_attempts"] = [
            f"Ensure this value is less than or equal to {limits['max_attempts']}."
        ]
    return errors
