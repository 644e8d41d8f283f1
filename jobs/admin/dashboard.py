"""Admin: the queues dashboard, its queue controls, and django-rq's views for superusers.

Mounted by config/urls.py at /admin/queues/ (before the admin's own URLs): this module is
also that URLconf. The numbers come from `jobs.selectors`; every change from `jobs.services`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, include, path, reverse
from django.utils import timezone
from django.views import View
from redis.exceptions import RedisError

from jobs.admin.display import human_duration
from jobs.admin.jobs import may_see_dashboard
from jobs.errors import UnknownQueue
from jobs.models import Job
from jobs.selectors.health import health_timeline
from jobs.selectors.queues import health_report, job_counts_by_queue, list_workers, queue_stats
from jobs.selectors.stats import hourly_activity
from jobs.services.jobs import check_queue
from jobs.services.queues import clean_queue, empty_queue, pause_queue, resume_queue
from jobs.transport import queueing
from tenants import access
from tenants.admin import tenant_ids_with
from tenants.models import Tenant

REFRESH_SECONDS = 5
CHART_HOURS = 24
PALETTE = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"]
OPERATIONS = {
    "pause": "Workers stop taking its jobs; running ones finish; enqueueing still works.",
    "resume": "Workers take its jobs again.",
    "empty": "Every job waiting in it is canceled, for every tenant.",
    "clean": "RQ's finished and failed records older than the age below are deleted.",
}


# --- Who sees what ----------------------------------------------------------------------------


def admin_tenant_ids(request: HttpRequest) -> list[int] | None:
    """The tenants whose numbers the user sees: None for a superuser (every tenant)."""
    if request.user.is_superuser:
        return None
    return tenant_ids_with(request, access.required_role("statistics"))


def dashboard_view(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Staff login as for any admin page, then queue statistics' role (PRODUCT.md §2)."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not may_see_dashboard(request):
            raise PermissionDenied("Queue statistics are for tenant admins and operators.")
        return view(request, *args, **kwargs)

    return admin.site.admin_view(guarded)


def superuser_view(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_superuser:
            raise PermissionDenied("Only superusers may do this: queues are shared by all.")
        return view(request, *args, **kwargs)

    return admin.site.admin_view(guarded)


# --- What the page shows ----------------------------------------------------------------------


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    tenant_ids = admin_tenant_ids(request)
    operator = tenant_ids is None
    return {
        "operator": operator,
        "health": health_report(),
        "timeline": health_timeline(hours=CHART_HOURS) if operator else [],
        "queues": queue_rows(tenant_ids),
        "workers": list_workers() if operator else [],
        "charts": activity_charts(tenant_ids),
        "refresh_seconds": REFRESH_SECONDS,
        "now": timezone.now(),
    }


def queue_rows(tenant_ids: list[int] | None) -> list[dict[str, Any]]:
    """One row per queue: live RQ numbers and PostgreSQL's dead letters (failed jobs)."""
    try:
        stats = {row["name"]: row for row in queue_stats()}
    except RedisError:
        stats = {}
    counts = job_counts_by_queue(tenant_ids=tenant_ids)
    rows = []
    for name in settings.CONVEYOR_QUEUES:
        live = stats.get(name, {})
        mine = counts[name]
        rows.append(
            {
                **live,
                "name": name,
                "concurrency": settings.CONVEYOR_QUEUES[name].get("concurrency", 1),
                "dead_letters": mine[Job.Status.FAILED],
                "tenant_counts": mine,
                "oldest_waiting": human_duration(_seconds(live.get("oldest_waiting_seconds"))),
                "redis_down": not live,
            }
        )
    return rows


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def activity_charts(tenant_ids: list[int] | None) -> list[dict[str, Any]]:
    """Throughput and failures per queue and hour over the last 24 hours, as SVG geometry."""
    hours = _hours()
    succeeded: dict[str, list[int]] = {q: [0] * CHART_HOURS for q in settings.CONVEYOR_QUEUES}
    failed: dict[str, list[int]] = {q: [0] * CHART_HOURS for q in settings.CONVEYOR_QUEUES}
    index = {hour: i for i, hour in enumerate(hours)}
    for row in _activity(tenant_ids):
        slot = index.get(timezone.localtime(row["hour"]).replace(minute=0, second=0, microsecond=0))
        if slot is None or row["queue"] not in succeeded:
            continue
        succeeded[row["queue"]][slot] += row["succeeded"]
        failed[row["queue"]][slot] += row["failed"]
    return [
        line_chart("Throughput: jobs succeeded per hour", succeeded, hours),
        line_chart("Failures: jobs failed per hour", failed, hours),
    ]


def _activity(tenant_ids: list[int] | None) -> list[dict[str, Any]]:
    if tenant_ids is None:
        return hourly_activity(tenant=None, hours=CHART_HOURS)
    rows: list[dict[str, Any]] = []
    for tenant in Tenant.objects.filter(pk__in=tenant_ids):
        rows += hourly_activity(tenant=tenant, hours=CHART_HOURS)
    return rows


def _hours() -> list[datetime]:
    current = timezone.localtime().replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=CHART_HOURS - 1 - i) for i in range(CHART_HOURS)]


def line_chart(
    title: str, series: dict[str, list[int]], hours: list[datetime], *, width: int = 480
) -> dict[str, Any]:
    """Polylines, grid lines and labels of a chart with one line per queue."""
    height, left, right, bottom, top = 180, 36, 20, 20, 8
    plot_w, plot_h = width - left - right, height - bottom - top
    peak = max([1, *(value for values in series.values() for value in values)])
    step = plot_w / (len(hours) - 1)

    def y(value: float) -> float:
        return round(top + plot_h - value / peak * plot_h, 1)

    lines = [
        {
            "queue": queue,
            "color": PALETTE[i % len(PALETTE)],
            "points": " ".join(f"{round(left + j * step, 1)},{y(v)}" for j, v in enumerate(values)),
            "total": sum(values),
        }
        for i, (queue, values) in enumerate(series.items())
    ]
    return {
        "title": title,
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "lines": lines,
        "y_ticks": [{"y": y(tick), "label": tick} for tick in sorted({0, peak // 2, peak})],
        "x_ticks": [
            {"x": round(left + j * step, 1), "label": hour.strftime("%H:%M")}
            for j, hour in enumerate(hours)
            if j % 4 == 3
        ],
        "empty": not any(line["total"] for line in lines),
    }


# --- Views ------------------------------------------------------------------------------------


class DashboardView(View):
    """The whole page; its script fetches DashboardFragmentView every 5 seconds."""

    def get(self, request: HttpRequest) -> HttpResponse:
        context = {
            **admin.site.each_context(request),
            **dashboard_context(request),
            "title": "Queues dashboard",
        }
        return TemplateResponse(request, "admin/jobs/dashboard.html", context)


class DashboardFragmentView(View):
    """The page's changing part alone, for the refresh without a reload."""

    def get(self, request: HttpRequest) -> HttpResponse:
        context = dashboard_context(request)
        return TemplateResponse(request, "admin/jobs/dashboard_content.html", context)


class CleanForm(forms.Form):
    older_than_hours = forms.IntegerField(min_value=0, max_value=24 * 365, initial=24)


class QueueOperateView(View):
    """GET asks for confirmation; POST pauses, resumes, empties or cleans the queue."""

    def get(self, request: HttpRequest, queue: str, operation: str) -> HttpResponse:
        return self._page(request, queue, operation, CleanForm())

    def post(self, request: HttpRequest, queue: str, operation: str) -> HttpResponse:
        self._check(queue, operation)
        form = CleanForm(request.POST if operation == "clean" else {"older_than_hours": 24})
        if not form.is_valid():
            return self._page(request, queue, operation, form)
        done = self._apply(request, queue, operation, form.cleaned_data["older_than_hours"])
        LogEntry.objects.create(
            user_id=cast(int, request.user.pk),
            object_repr=f"queue {queue}",
            action_flag=CHANGE,
            change_message=done,
        )
        messages.success(request, done)
        return HttpResponseRedirect(reverse("queues-dashboard"))

    def _apply(self, request: HttpRequest, queue: str, operation: str, hours: int) -> str:
        if operation == "pause":
            pause_queue(queue, by=request.user)
            return f"Paused queue {queue}."
        if operation == "resume":
            resume_queue(queue, by=request.user)
            return f"Resumed queue {queue}."
        if operation == "empty":
            canceled = empty_queue(queue, by=request.user)
            return f"Emptied queue {queue}: {canceled:,} waiting job(s) canceled."
        removed = clean_queue(queue, older_than=hours * 3600)
        return f"Cleaned queue {queue}: {removed:,} RQ record(s) older than {hours} h deleted."

    def _check(self, queue: str, operation: str) -> None:
        if operation not in OPERATIONS:
            raise Http404(f"No queue operation {operation!r}.")
        try:
            check_queue(queue)
        except UnknownQueue as error:
            raise Http404(str(error)) from None

    def _page(self, request: HttpRequest, queue: str, operation: str, form: Any) -> HttpResponse:
        self._check(queue, operation)
        context = {
            **admin.site.each_context(request),
            "title": f"{operation.capitalize()} queue {queue}?",
            "queue": queue,
            "operation": operation,
            "explanation": OPERATIONS[operation],
            "form": form,
            "waiting": _waiting(queue) if operation == "empty" else None,
        }
        return TemplateResponse(request, "admin/jobs/queue_confirmation.html", context)


def _waiting(queue: str) -> int:
    statuses = [status for status in Job.WAITING if status != Job.Status.DEFERRED]
    counts = job_counts_by_queue(tenant_ids=None)[queue]
    return sum(counts[status] for status in statuses)


def _django_rq_urls() -> list[URLPattern]:
    """django-rq's dashboard shows every job's arguments: superusers only, every view."""
    patterns = queueing.rq_views()
    for pattern in patterns:
        pattern.callback = superuser_view(pattern.callback)
    return patterns


urlpatterns: list[URLPattern | URLResolver] = [
    path("", dashboard_view(DashboardView.as_view()), name="queues-dashboard"),
    path(
        "fragment/",
        dashboard_view(DashboardFragmentView.as_view()),
        name="queues-dashboard-fragment",
    ),
    path("rq/", include((_django_rq_urls(), "django_rq"))),
    path(
        "<str:queue>/<str:operation>/",
        superuser_view(QueueOperateView.as_view()),
        name="queues-operate",
    ),
]
