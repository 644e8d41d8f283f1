"""Admin: jobs and their logs, read-only; every change goes through jobs.services.jobs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from redis.exceptions import RedisError

from jobs.admin.display import (
    duration_between,
    human_duration,
    job_link,
    jobs_link,
    pretty_json,
    short_time,
    status_badge,
)
from jobs.admin.listing import (
    EstimatedCountPaginator,
    JobChangeList,
    KindFilter,
    QueueFilter,
    ScheduleFilter,
    TenantFilter,
    WorkflowFilter,
)
from jobs.errors import InvalidTransition
from jobs.models import Job, JobLog
from jobs.redaction import has_secrets, is_secret_key, redact, trim_traceback
from jobs.services.jobs import cancel_job, discard_jobs, retry_job, retry_now
from jobs.transport import queueing
from tenants import access
from tenants.admin import TenantScopedAdminMixin, tenant_ids_with

if TYPE_CHECKING:
    _Inline = admin.TabularInline[JobLog, Job]
else:
    _Inline = admin.TabularInline

EVERYWHERE = [ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM]


# --- Actions: what each one does to one job ---------------------------------------------------

Outcome = Callable[[Job, Any], str]

# jobs.services.jobs.check_rerun refused: an internal kind, or a kind above the user's role.
NOT_RERUN = "not yours to run again (an internal kind, or one above your role)"


def cancel_one(job: Job, by: Any) -> str:
    if job.status == Job.Status.CANCELED:
        return "already canceled"
    try:
        done = cancel_job(job, by=by)
    except InvalidTransition:
        return "already finished"
    return "canceled" if done.status == Job.Status.CANCELED else "asked to stop"


def retry_one(job: Job, by: Any) -> str:
    if job.status not in Job.RETRYABLE:
        return "not failed or canceled"
    try:
        retry_job(job, by=by)
    except InvalidTransition:
        return "held back by an active job with the same idempotency key"
    except PermissionDenied:
        return NOT_RERUN
    return "retried"


def retry_now_one(job: Job, by: Any) -> str:
    if job.status not in (Job.Status.RETRYING, Job.Status.SCHEDULED):
        return "not waiting for a due time"
    try:
        retry_now(job, by=by)
    except InvalidTransition:
        return "started meanwhile"
    except PermissionDenied:
        return NOT_RERUN
    return "moved to now"


CHANGED = {"canceled", "asked to stop", "retried", "moved to now", "discarded"}
DONE = {"cancel": "canceled", "retry": "retried", "run now": "moved to now", "discard": "discarded"}


def may_see_dashboard(request: HttpRequest) -> bool:
    """Queue statistics and health: superusers, and tenant admins for their tenants (§2)."""
    if request.user.is_superuser:
        return True
    return bool(tenant_ids_with(request, access.required_role("statistics")))


class JobLogInline(_Inline):
    model = JobLog
    verbose_name_plural = "timeline"
    fields = ("created_at", "level_badge", "event", "message", "details")
    readonly_fields = fields
    extra = max_num = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True  # the job page itself checked the tenant

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="level")
    def level_badge(self, log: JobLog) -> SafeString:
        return status_badge(log.level)

    @admin.display(description="data")
    def details(self, log: JobLog) -> str:
        data = {key: value for key, value in log.data.items() if key != "traceback"}
        return json.dumps(redact(data), sort_keys=True, ensure_ascii=False) if data else ""


class ReadOnlyRecordAdmin(TenantScopedAdminMixin):
    """Jobs and their logs change only through services: the admin shows them, never edits."""

    class Media:
        css = {"all": ["jobs/admin.css"]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(ReadOnlyRecordAdmin):
    """The jobs console: list, filter, inspect, and act through the services."""

    access_area = "jobs"
    other_areas = {"discard": "job_discard"}  # deletes for good
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    list_display = (
        "short_id",
        "kind",
        "tenant",
        "queue_column",
        "status_column",
        "progress_column",
        "attempts",
        "created",
        "times",
        "run_and_wait",
    )
    list_display_links = ("short_id",)
    list_select_related = ("tenant",)
    sortable_by = ("created",)
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    search_fields = ("id", "idempotency_key", "kind", "payload")
    search_help_text = (
        "A job id, an idempotency key, a kind, or key=value of the payload (secrets never match)."
    )
    list_filter = [
        "status",
        QueueFilter,
        KindFilter,
        TenantFilter,
        "priority",
        ("created_at", admin.DateFieldListFilter),
        ("finished_at", admin.DateFieldListFilter),
        ScheduleFilter,
        WorkflowFilter,
    ]
    inlines = [JobLogInline]
    actions = ["cancel", "retry", "retry_now", "discard"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "job_id",
                    "tenant",
                    "kind",
                    ("queue", "priority"),
                    "state",
                    "progress_column",
                    "attempts",
                    "timeout",
                    "idempotency_key",
                    "created_by",
                    ("worker_name", "lease", "lease_expires_at"),
                )
            },
        ),
        (
            "Times",
            {
                "fields": (
                    ("created_at", "scheduled_at"),
                    ("enqueued_at", "started_at", "finished_at"),
                    "cancel_requested_at",
                    ("duration", "wait"),
                )
            },
        ),
        ("Payload and result", {"fields": ("payload_json", "result_json")}),
        ("Errors", {"fields": ("last_error", "attempt_errors")}),
        ("Related jobs", {"fields": ("related",)}),
    )
    readonly_fields = (*flatten_fieldsets(fieldsets), "attempt_errors_trimmed")

    # --- Permissions: read-only rows, actions by role --------------------------------------

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Cancel, retry, retry now: agents and above (PRODUCT.md §2)."""
        return request.user.is_superuser or bool(self.editable_tenant_ids(request))

    def has_discard_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(self._tenants_with(request, self.discard_role))

    @property
    def discard_role(self) -> str:
        return access.required_role(self.area_of("discard"), write=True)

    def _tenants_with(self, request: HttpRequest, role: str) -> list[int]:
        return tenant_ids_with(request, role)

    def _actionable(
        self, request: HttpRequest, queryset: QuerySet[Job], role: str
    ) -> QuerySet[Job]:
        if request.user.is_superuser:
            return queryset
        return queryset.filter(tenant__in=self._tenants_with(request, role))

    def get_model_perms(self, request: HttpRequest) -> dict[str, bool]:
        return {**super().get_model_perms(request), "dashboard": may_see_dashboard(request)}

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        extra = {"dashboard_link": may_see_dashboard(request), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return super().get_queryset(request).select_related("tenant")

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        try:
            pk = UUID(object_id)
        except ValueError:
            return None
        related = ["batch", "created_by", "schedule"]
        jobs = self.get_queryset(request).select_related(*related)
        return jobs.filter(pk=pk).first()

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        related = {
            "parent__id__exact",
            "batch__id__exact",
            "depends_on__id__exact",
            "dependents__id__exact",
        }
        return lookup in related or super().lookup_allowed(lookup, value, request)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        term = search_term.strip()
        return (queryset.filter(search_condition(term)) if term else queryset), False

    # --- Columns ---------------------------------------------------------------------------

    @admin.display(description="job")
    def short_id(self, job: Job) -> str:
        return str(job.pk)[:8]

    @admin.display(description="id")
    def job_id(self, job: Job) -> str:
        return str(job.pk)

    @admin.display(description="queue")
    def queue_column(self, job: Job) -> SafeString:
        return format_html('<span class="cv-stack">{}<br>{}</span>', job.queue, job.priority)

    @admin.display(description="status")
    def status_column(self, job: Job) -> SafeString:
        return status_badge(job.status)

    @admin.display(description="progress")
    def progress_column(self, job: Job) -> SafeString:
        return format_html(
            '<span class="cv-progress"><progress max="100" value="{}">{} %</progress>'
            '<span class="cv-progress-text">{} %</span> <span class="quiet">{}</span></span>',
            job.progress,
            job.progress,
            job.progress,
            job.progress_message,
        )

    @admin.display(description="attempt")
    def attempts(self, job: Job) -> str:
        snoozed = f" (snoozed {job.snoozes}×)" if job.snoozes else ""
        return f"{job.attempt}/{job.max_attempts}{snoozed}"

    @admin.display(description="created", ordering="created_at")
    def created(self, job: Job) -> SafeString | str:
        return short_time(job.created_at)

    @admin.display(description="enq · start · end")
    def times(self, job: Job) -> SafeString:
        return format_html(
            '<span class="cv-stack">{}<br>{}<br>{}</span>',
            short_time(job.enqueued_at),
            short_time(job.started_at),
            short_time(job.finished_at),
        )

    @admin.display(description="run · wait")
    def run_and_wait(self, job: Job) -> SafeString:
        return format_html(
            '<span class="cv-stack">{}<br>{}</span>',
            self.duration(job) or "–",
            self.wait(job) or "–",
        )

    @admin.display(description="duration")
    def duration(self, job: Job) -> str:
        return human_duration(duration_between(job.started_at, job.finished_at))

    @admin.display(description="wait")
    def wait(self, job: Job) -> str:
        if job.status in Job.FINISHED and job.started_at is None:
            return ""
        return human_duration(duration_between(job.enqueued_at, job.started_at))

    # --- Detail ----------------------------------------------------------------------------

    @admin.display(description="state")
    def state(self, job: Job) -> SafeString:
        try:
            live = queueing.rq_state(job)
        except RedisError as error:
            return format_html("{} · Redis unreachable: {}", status_badge(job.status), error)
        if live is None:
            rq = mark_safe('<span class="quiet">Redis holds no record of it</span>')
        else:
            rq = format_html(
                "{} in <code>{}</code>{}",
                status_badge(str(getattr(live["status"], "value", live["status"]))),
                live["origin"],
                format_html(" on {}", live["worker_name"]) if live["worker_name"] else "",
            )
        return format_html("database: {} &nbsp; RQ (live): {}", status_badge(job.status), rq)

    @admin.display(description="payload")
    def payload_json(self, job: Job) -> SafeString:
        return pretty_json(job.payload)

    @admin.display(description="result")
    def result_json(self, job: Job) -> SafeString:
        return pretty_json(job.result)

    @admin.display(description="last error")
    def last_error(self, job: Job) -> SafeString | str:
        if not job.error_type:
            return "–"
        return format_html("<strong>{}</strong>: {}", job.error_type, job.error_message)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        """Tenant staff see tracebacks without the server's paths; operators see them whole."""
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        return [
            (name, {**options, "fields": _swap(options["fields"], TRIMMED_ERRORS)})
            for name, options in fieldsets
        ]

    @admin.display(description="each attempt")
    def attempt_errors(self, job: Job) -> SafeString | str:
        return self._attempt_errors(job, trim=False)

    @admin.display(description="each attempt")
    def attempt_errors_trimmed(self, job: Job) -> SafeString | str:
        return self._attempt_errors(job, trim=True)

    def _attempt_errors(self, job: Job, *, trim: bool) -> SafeString | str:
        logs = JobLog.objects.filter(job=job, data__has_key="traceback").order_by("created_at")
        rows = [
            (
                log.data.get("attempt", "?"),
                short_time(log.created_at),
                log.event,
                log.message,
                trim_traceback(log.data["traceback"]) if trim else log.data["traceback"],
            )
            for log in logs
        ]
        if not rows:
            return "–"
        return format_html(
            '<table class="cv-errors"><tr><th>attempt</th><th>when</th><th>event</th>'
            "<th>error</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}<details><summary>traceback"
                '</summary><pre class="cv-traceback">{}</pre></details></td></tr>',
                rows,
            ),
        )

    @admin.display(description="links")
    def related(self, job: Job) -> SafeString | str:
        parts = [
            format_html("parent: {}", job_link(job.parent_id)) if job.parent_id else "",
            _some("children", job.children.all(), parent__id__exact=job.pk),
            _some("depends on", job.depends_on.all(), dependents__id__exact=job.pk),
            _some("dependents", job.dependents.all(), depends_on__id__exact=job.pk),
            jobs_link(f"batch {job.batch}", batch__id__exact=job.batch_id) if job.batch_id else "",
            _schedule_link(job),
        ]
        shown = [part for part in parts if part]
        return format_html_join("", "<div>{}</div>", ((part,) for part in shown)) or "–"

    # --- Actions ---------------------------------------------------------------------------

    @admin.action(description="Cancel", permissions=["operate"], location=EVERYWHERE)
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> TemplateResponse | None:
        return self._act(request, queryset, "cancel", Job.CANCELABLE, cancel_one)

    @admin.action(description="Retry", permissions=["operate"], location=EVERYWHERE)
    def retry(self, request: HttpRequest, queryset: QuerySet[Job]) -> TemplateResponse | None:
        return self._act(request, queryset, "retry", Job.RETRYABLE, retry_one)

    @admin.action(
        description="Retry now (skip the wait)", permissions=["operate"], location=EVERYWHERE
    )
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> TemplateResponse | None:
        waiting = (Job.Status.RETRYING, Job.Status.SCHEDULED)
        return self._act(request, queryset, "run now", waiting, retry_now_one)

    @admin.action(
        description="Discard dead letters (delete failed jobs)",
        permissions=["discard"],
        location=EVERYWHERE,
    )
    def discard(self, request: HttpRequest, queryset: QuerySet[Job]) -> TemplateResponse | None:
        jobs = self._actionable(request, queryset, self.discard_role)
        page = self._confirm(request, queryset, jobs, "discard", (Job.Status.FAILED,))
        if page is not None:
            return page
        total, actionable = queryset.count(), jobs.count()
        discarded = discard_jobs(jobs, before_delete=lambda rows: self.log_deletions(request, rows))
        tally = Counter({"discarded": discarded, "not failed": actionable - discarded})
        self._report(request, tally, outside=total - actionable)
        return None

    def _act(
        self,
        request: HttpRequest,
        queryset: QuerySet[Job],
        verb: str,
        eligible: tuple[str, ...],
        outcome: Outcome,
    ) -> TemplateResponse | None:
        jobs = self._actionable(request, queryset, self.edit_role)
        page = self._confirm(request, queryset, jobs, verb, eligible)
        if page is not None:
            return page
        total = queryset.count()
        tally: Counter[str] = Counter()
        for job in jobs.iterator(chunk_size=500):
            result = outcome(job, request.user)
            tally[result] += 1
            if result in CHANGED:
                self.log_change(request, job, f"{result.capitalize()} from the admin.")
        self._report(request, tally, outside=total - sum(tally.values()))
        return None

    def _confirm(
        self,
        request: HttpRequest,
        queryset: QuerySet[Job],
        jobs: QuerySet[Job],
        verb: str,
        eligible: tuple[str, ...],
    ) -> TemplateResponse | None:
        """The page that asks first, with how many jobs it touches; None once confirmed."""
        if request.POST.get("confirm") == "yes":
            return None
        targets = jobs.filter(status__in=eligible)
        total, actionable, count = queryset.count(), jobs.count(), targets.count()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{verb.capitalize()} jobs?",
            "verb": verb,
            "done": DONE[verb],
            "total": total,
            "eligible": count,
            "skipped": total - count,
            "more": count - 20,
            "outside": total - actionable,
            "sample": targets.select_related("tenant")[:20],
            "across": request.POST.get("select_across") == "1",
            "replay": [
                (key, value)
                for key in request.POST
                if key not in ("csrfmiddlewaretoken", "confirm")
                for value in request.POST.getlist(key)
            ],
        }
        return TemplateResponse(request, "admin/jobs/job/action_confirmation.html", context)

    def _report(self, request: HttpRequest, tally: Counter[str], *, outside: int) -> None:
        if outside > 0:
            tally["outside the tenants where your role allows it"] = outside
        ordered = sorted(tally.items(), key=lambda item: item[0] not in CHANGED)
        parts = [f"{count:,} {what}" for what, count in ordered if count]
        changed = any(tally[what] for what in CHANGED)
        self.message_user(
            request,
            (", ".join(parts) or "Nothing to do") + ".",
            messages.SUCCESS if changed else messages.WARNING,
        )


TRIMMED_ERRORS = {"attempt_errors": "attempt_errors_trimmed"}


def _swap(fields: Any, names: dict[str, str]) -> tuple[Any, ...]:
    return tuple(
        _swap(field, names) if isinstance(field, tuple) else names.get(field, field)
        for field in fields
    )


def search_condition(term: str) -> Q:
    """A job id matches exactly; `key=value` matches the payload; other text the key and kind.

    Never a redacted value: a secret-looking key (at any depth of the value searched for) matches
    nothing, and free text does not search payloads, so a search cannot guess a secret.
    """
    try:
        return Q(pk=UUID(term))
    except ValueError:
        pass
    key, equals, value = term.partition("=")
    if equals and key.strip():
        key, value = key.strip(), value.strip()
        if is_secret_key(key) or has_secrets(_json(value)):
            return Q(pk__in=[])
        return Q(payload__contains={key: value}) | Q(payload__contains={key: _json(value)})
    return Q(idempotency_key=term) | Q(kind__startswith=term)


def _json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _some(label: str, jobs: QuerySet[Job], **params: Any) -> SafeString | str:
    shown = list(jobs.order_by("created_at").values_list("pk", flat=True)[:10])
    if not shown:
        return ""
    more = jobs_link("all…", **params) if len(shown) == 10 else ""
    links = format_html_join(", ", "{}", ((job_link(pk),) for pk in shown))
    return format_html("{}: {} {}", label, links, more)


def _schedule_link(job: Job) -> SafeString | str:
    schedule_id = getattr(job, "schedule_id", None)
    if not schedule_id:
        return ""
    try:
        url = reverse("admin:jobs_schedule_change", args=[schedule_id])
    except Exception:
        return format_html("schedule: {}", schedule_id)
    return format_html('schedule: <a href="{}">{}</a>', url, job.schedule)


@admin.register(JobLog)
class JobLogAdmin(ReadOnlyRecordAdmin):
    """Every job's log lines, newest first; read-only."""

    access_area = "jobs"

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_display = ("created_at", "job_column", "tenant", "level_column", "event", "message")
    list_filter = ["event", "level", TenantFilter]
    list_select_related = ("tenant",)
    search_fields = ("job__id",)
    search_help_text = "A job id."
    ordering = ("-id",)  # the primary key follows time and is indexed

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[JobLog], search_term: str
    ) -> tuple[QuerySet[JobLog], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(job_id=UUID(term)), False
        except ValueError:
            return queryset.none(), False

    @admin.display(description="job")
    def job_column(self, log: JobLog) -> SafeString:
        return job_link(log.job_id)

    @admin.display(description="level")
    def level_column(self, log: JobLog) -> SafeString:
        return status_badge(log.level)
