"""Reads for alerts: what each rule's condition finds at a check, and the rules and incidents
a user may see. Platform conditions read the stored check (Redis-side figures); windowed ones
and every tenant rule read PostgreSQL, narrowed to the rule's tenant when it has one."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Min, Q, QuerySet

from alerts.models import AlertRule, Condition, Incident
from jobs.models import HealthCheck, Job
from jobs.selectors.stats import Percentile, epoch
from tenants.models import Tenant

COMPONENTS = ("database", "redis")


@dataclass(frozen=True)
class Finding:
    """What a rule's condition found: `firing` True or False, or None when the check could not
    tell (Redis down hides the queues): an open incident then stays as it is."""

    firing: bool | None
    summary: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


UNKNOWN = Finding(None)


def find(rule: AlertRule, check: HealthCheck) -> Finding:
    """Evaluate `rule`'s condition against `check` (and PostgreSQL, as of the check)."""
    return FINDERS[rule.condition](rule, check)


def _component_down(rule: AlertRule, check: HealthCheck) -> Finding:
    names = [rule.component] if rule.component else list(COMPONENTS)
    down = {
        name: check.components[name][1]
        for name in names
        if name in check.components and check.components[name][0] == "error"
    }
    if down:
        return Finding(True, " ".join(down.values()), {"down": sorted(down)})
    return Finding(False, "Every component answers.")


def _queues(rule: AlertRule, check: HealthCheck) -> dict[str, dict[str, Any]] | None:
    figures = {
        name.removeprefix("queue:"): verdict[2]
        for name, verdict in check.components.items()
        if name.startswith("queue:") and (not rule.queue or name == f"queue:{rule.queue}")
    }
    return figures or None


def _no_worker(rule: AlertRule, check: HealthCheck) -> Finding:
    queues = _queues(rule, check)
    if queues is None:
        return UNKNOWN
    stuck = {
        name: f["waiting"]
        for name, f in queues.items()
        if f.get("waiting") and not f.get("workers") and not f.get("paused")
    }
    if not stuck:
        return Finding(False, "Every queue with work has a live worker.")
    said = ", ".join(f"{name} ({waiting} waiting)" for name, waiting in sorted(stuck.items()))
    return Finding(True, f"No live worker for {said}.", {"waiting": stuck})


def _oldest_waiting(rule: AlertRule, check: HealthCheck) -> Finding:
    if rule.tenant_id is not None:
        return _tenant_oldest_waiting(rule, check)
    queues = _queues(rule, check)
    if queues is None:
        return UNKNOWN
    late = {
        name: f["oldest_waiting_seconds"]
        for name, f in queues.items()
        if (f.get("oldest_waiting_seconds") or 0) > rule.threshold and not f.get("paused")
    }
    if not late:
        return Finding(False, f"No job has waited over {rule.threshold:g} s.")
    said = ", ".join(f"{name} {age:.0f} s" for name, age in sorted(late.items()))
    return Finding(True, f"Oldest waiting job over {rule.threshold:g} s: {said}.", {"late": late})


def _tenant_oldest_waiting(rule: AlertRule, check: HealthCheck) -> Finding:
    # The tenant's own backlog, from its rows: Redis queues are shared by every tenant.
    waiting = _jobs(rule).filter(status__in=(Job.Status.PENDING, Job.Status.QUEUED))
    figures = waiting.aggregate(count=Count("pk"), since=Min("enqueued_at"), made=Min("created_at"))
    oldest = figures["since"] or figures["made"]
    age = (check.checked_at - oldest).total_seconds() if oldest else 0.0
    numbers = {"waiting": figures["count"], "oldest_waiting_seconds": round(age, 1)}
    if age <= rule.threshold:
        return Finding(
            False, f"{figures['count']} waiting, none over {rule.threshold:g} s.", numbers
        )
    summary = f"{figures['count']} waiting; the oldest for {age:.0f} s (over {rule.threshold:g} s)."
    return Finding(True, summary, numbers)


def _failure_rate(rule: AlertRule, check: HealthCheck) -> Finding:
    ended = _ended(rule, check).filter(status__in=(Job.Status.SUCCEEDED, Job.Status.FAILED))
    counts = ended.aggregate(total=Count("pk"), failed=Count("pk", filter=Q(status="failed")))
    total, failed = counts["total"], counts["failed"]
    rate = failed / total if total else 0.0
    numbers = {"ended": total, "failed": failed, "rate": round(rate, 4)}
    summary = f"{rate:.0%} of {total} jobs{_scope(rule)} failed in {rule.window_minutes} min"
    if total < rule.min_jobs or rate <= rule.threshold:
        return Finding(False, f"{summary}.", numbers)
    return Finding(True, f"{summary} (over {rule.threshold:.0%}).", numbers)


def _dead_letters(rule: AlertRule, check: HealthCheck) -> Finding:
    grown = _ended(rule, check).filter(status=Job.Status.FAILED).count()
    numbers = {"dead_letters": grown}
    summary = f"{grown} jobs{_scope(rule)} dead-lettered in {rule.window_minutes} min"
    if grown < max(rule.threshold, 1):
        return Finding(False, f"{summary}.", numbers)
    return Finding(True, f"{summary} (threshold {rule.threshold:g}).", numbers)


def _tenant_wait_p95(rule: AlertRule, check: HealthCheck) -> Finding:
    ended = _ended(rule, check).filter(started_at__isnull=False, enqueued_at__isnull=False)
    wait = epoch(F("started_at") - F("enqueued_at"))
    rows = ended.values("tenant__slug").annotate(p95=Percentile(wait, 0.95))
    slow = {
        row["tenant__slug"]: round(row["p95"], 1) for row in rows if row["p95"] > rule.threshold
    }
    if not slow:
        return Finding(False, f"Every tenant's wait p95 is within {rule.threshold:g} s.")
    said = ", ".join(f"{slug} {p95:.0f} s" for slug, p95 in sorted(slow.items()))
    return Finding(True, f"Wait p95 over {rule.threshold:g} s: {said}.", {"p95": slow})


def _redis_down(check: HealthCheck) -> bool:
    # The workers' figures live in Redis: without it, no worker is known, and none is well.
    return check.components.get("redis", ["error"])[0] != "healthy"


def _worker_memory(rule: AlertRule, check: HealthCheck) -> Finding:
    if _redis_down(check):
        return UNKNOWN
    big = {
        name: f["rss_mb"]
        for name, f in check.workers.items()
        if f.get("rss_mb", 0) > rule.threshold and _serves(rule, f)
    }
    if not big:
        return Finding(False, f"Every worker is under {rule.threshold:g} MB.")
    said = ", ".join(f"{name} {mb:.0f} MB" for name, mb in sorted(big.items()))
    return Finding(True, f"Worker memory over {rule.threshold:g} MB: {said}.", {"rss_mb": big})


def _disk_free(rule: AlertRule, check: HealthCheck) -> Finding:
    if _redis_down(check):
        return UNKNOWN
    low: dict[str, float] = {}
    for figures in check.workers.values():
        free = figures.get("disk_free_gb")
        if free is not None and free < rule.threshold:
            low[figures.get("hostname") or "?"] = free
    if not low:
        return Finding(False, f"Every worker host has {rule.threshold:g} GB free or more.")
    said = ", ".join(f"{host} {gb:.1f} GB" for host, gb in sorted(low.items()))
    return Finding(True, f"Free disk under {rule.threshold:g} GB: {said}.", {"disk_free_gb": low})


def _serves(rule: AlertRule, worker: dict[str, Any]) -> bool:
    return not rule.queue or rule.queue in worker.get("queues", [])


def _jobs(rule: AlertRule) -> QuerySet[Job]:
    jobs = (
        Job.objects.all() if rule.tenant_id is None else Job.objects.filter(tenant=rule.tenant_id)
    )
    if rule.queue:
        jobs = jobs.filter(queue=rule.queue)
    if rule.kind:
        jobs = jobs.filter(kind=rule.kind)
    return jobs


def _ended(rule: AlertRule, check: HealthCheck) -> QuerySet[Job]:
    since = check.checked_at - timedelta(minutes=rule.window_minutes)
    return _jobs(rule).filter(finished_at__gte=since, finished_at__lte=check.checked_at)


def _scope(rule: AlertRule) -> str:
    parts = [f"of {rule.kind}" if rule.kind else "", f"on {rule.queue}" if rule.queue else ""]
    return "".join(f" {part}" for part in parts if part)


FINDERS: dict[str, Callable[[AlertRule, HealthCheck], Finding]] = {
    Condition.COMPONENT_DOWN: _component_down,
    Condition.NO_WORKER: _no_worker,
    Condition.OLDEST_WAITING: _oldest_waiting,
    Condition.FAILURE_RATE: _failure_rate,
    Condition.DEAD_LETTERS: _dead_letters,
    Condition.TENANT_WAIT_P95: _tenant_wait_p95,
    Condition.WORKER_MEMORY: _worker_memory,
    Condition.DISK_FREE: _disk_free,
}


# --- Rules and incidents a user may see -------------------------------------------------------


def list_rules(*, tenant: Tenant | None = None) -> QuerySet[AlertRule]:
    """Every rule (operators), or one tenant's own rules."""
    rules = AlertRule.objects.select_related("tenant").prefetch_related("recipients")
    return rules if tenant is None else rules.for_tenant(tenant)


def list_incidents(*, tenant: Tenant | None = None, status: str = "") -> QuerySet[Incident]:
    """Incidents newest first: every one (operators), or one tenant's own rules' incidents."""
    incidents = Incident.objects.select_related("rule", "tenant", "acknowledged_by")
    if tenant is not None:
        incidents = incidents.for_tenant(tenant)
    if status:
        incidents = incidents.filter(status=status)
    return incidents.order_by("-opened_at", "-pk")


def last_resolved_at(rule: AlertRule) -> datetime | None:
    """When the rule's last incident resolved: the start of its cooldown."""
    resolved = Incident.objects.filter(rule=rule, resolved_at__isnull=False)
    return resolved.order_by("-resolved_at").values_list("resolved_at", flat=True).first()
