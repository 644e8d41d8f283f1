"""API views: jobs — list, enqueue, bulk enqueue, detail, cancel, retry, retry now, bulk
operations (cancel, retry, discard), logs of a job and of the tenant."""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from django.db.models import QuerySet
from django.urls import URLPattern, path
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.common import (
    TENANT_ERRORS,
    TENANT_LIMITS,
    TENANT_PRIORITIES,
    CreatedAtCursorPagination,
    PreparedFields,
    RedactedJSONField,
    RedactedObjectField,
    errors,
    require_redis,
    tenant_request,
)
from jobs.api.filters import JobFilter, JobLogFilter, JobOrdering
from jobs.errors import UnknownKind
from jobs.kinds import JobKind, get_kind, tenant_option_errors
from jobs.models import Job, JobLog, Priority
from jobs.redaction import redact, trim_traceback
from jobs.selectors.jobs import get_job, job_logs, list_jobs, tenant_logs
from jobs.services.jobs import (
    cancel_job,
    cancel_jobs,
    discard_jobs,
    enqueue_job,
    enqueue_jobs,
    retry_job,
    retry_jobs,
    retry_now,
)
from tenants.api import TENANT_PARAMETER
from tenants.models import Tenant
from tenants.permissions import HasTenantRole, TenantRequest

IDEMPOTENCY_HEADER = "Idempotency-Key"
RECENT_LOGS = 20
MAX_DELAY = 366 * 24 * 3600
MAX_BULK_IDS = 1000
MAX_BULK_ENQUEUE = 1000
MAX_WINDOW = 30 * 24 * 3600
WINDOWS = ("unique_for", "debounce", "throttle")


JOB_ID = OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


def find_job(request: TenantRequest, job_id: str) -> Job:
    """The request tenant's job; a malformed id answers 404 like another tenant's or none."""
    try:
        UUID(job_id)
    except ValueError:
        raise NotFound() from None
    return get_job(tenant=request.tenant, job_id=job_id)


# --- Output ------------------------------------------------------------------------------------


class JobLogOutput(serializers.ModelSerializer):
    class Meta:
        model = JobLog
        fields = ["id", "created_at", "level", "event", "message", "data"]
        read_only_fields = fields

    def to_representation(self, log: JobLog) -> dict[str, Any]:
        row = super().to_representation(log)
        row["data"] = redact(row["data"])
        if isinstance(row["data"].get("traceback"), str) and not for_operator(self.context):
            row["data"]["traceback"] = trim_traceback(row["data"]["traceback"])
        return row


def for_operator(context: Mapping[str, Any]) -> bool:
    """Whether the answer goes to a superuser, who sees tracebacks with the server's paths."""
    request = context.get("request")
    return bool(request is not None and request.user.is_superuser)


class TenantLogOutput(JobLogOutput):
    job = serializers.UUIDField(source="job_id", help_text="The job the line belongs to.")

    class Meta(JobLogOutput.Meta):
        fields = [*JobLogOutput.Meta.fields, "job"]


class JobOutput(PreparedFields, serializers.ModelSerializer):
    tenant = serializers.CharField(source="tenant.slug")
    payload = RedactedObjectField()
    result = RedactedJSONField(allow_null=True)
    created_by = serializers.CharField(source="created_by.username", allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "tenant",
            "kind",
            "queue",
            "priority",
            "status",
            "payload",
            "progress",
            "progress_message",
            "result",
            "error_type",
            "error_message",
            "attempt",
            "max_attempts",
            "snoozes",
            "timeout",
            "idempotency_key",
            "scheduled_at",
            "created_at",
            "enqueued_at",
            "started_at",
            "finished_at",
            "cancel_requested_at",
            "created_by",
            "parent",
            "batch",
            "schedule",
            "worker_name",
        ]
        read_only_fields = fields


class JobDetailOutput(JobOutput):
    depends_on = serializers.SerializerMethodField(help_text="Jobs that must succeed first.")
    logs = serializers.SerializerMethodField(help_text=f"The last {RECENT_LOGS} log lines.")

    class Meta(JobOutput.Meta):
        fields = [*JobOutput.Meta.fields, "error_traceback", "depends_on", "logs"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_depends_on(self, job: Job) -> list[str]:
        return [str(pk) for pk in job.depends_on.values_list("pk", flat=True)]

    @extend_schema_field(JobLogOutput(many=True))
    def get_logs(self, job: Job) -> list[dict[str, Any]]:
        recent = list(job_logs(job).reverse()[:RECENT_LOGS])[::-1]
        return cast(
            list[dict[str, Any]], JobLogOutput(recent, many=True, context=self.context).data
        )

    def to_representation(self, job: Job) -> dict[str, Any]:
        row = super().to_representation(job)
        if row["error_traceback"] and not for_operator(self.context):
            row["error_traceback"] = trim_traceback(row["error_traceback"])
        return row


class BulkCancelOutput(serializers.Serializer):
    canceled = serializers.IntegerField(help_text="Waiting jobs canceled: they never run.")
    cancel_requested = serializers.IntegerField(help_text="Running jobs told to stop.")
    skipped = serializers.IntegerField(help_text="Jobs that had already ended.")


class BulkDiscardOutput(serializers.Serializer):
    discarded = serializers.IntegerField(help_text="Failed jobs (dead letters) deleted.")
    skipped = serializers.IntegerField(help_text="Chosen jobs that were not failed: kept.")


class BulkRetryOutput(serializers.Serializer):
    retried = serializers.IntegerField(help_text="Failed or canceled jobs handed over again.")
    skipped = serializers.IntegerField(help_text="Jobs that were not failed or canceled.")


JOB_EXAMPLE: dict[str, Any] = {
    "id": "6f1c2a4e-8d0b-4c55-9a3e-1f2b3c4d5e6f",
    "tenant": "demo",
    "kind": "jobs.sleep",
    "queue": "default",
    "priority": "normal",
    "status": "queued",
    "payload": {"seconds": 5, "steps": 10},
    "progress": 0,
    "progress_message": "",
    "result": None,
    "error_type": "",
    "error_message": "",
    "attempt": 0,
    "max_attempts": 3,
    "snoozes": 0,
    "timeout": 180,
    "idempotency_key": "nightly-2026-11-22",
    "scheduled_at": None,
    "created_at": "2026-11-22T16:30:00.123456Z",
    "enqueued_at": "2026-11-22T16:30:00.234567Z",
    "started_at": None,
    "finished_at": None,
    "cancel_requested_at": None,
    "created_by": "admin",
    "parent": None,
    "batch": None,
    "schedule": None,
    "worker_name": "",
}
LOG_EXAMPLE: dict[str, Any] = {
    "id": 41,
    "created_at": "2026-11-22T16:30:00.123456Z",
    "level": "info",
    "event": "enqueued",
    "message": "Enqueued on default (normal).",
    "data": {"by": "admin"},
}


class LogPagination(CreatedAtCursorPagination):
    ordering = ("created_at", "id")


# --- Jobs --------------------------------------------------------------------------------------


class JobListView(generics.ListAPIView):
    """`jobs/`: GET lists the tenant's jobs (viewer and up), POST enqueues one (agent and up)."""

    permission_classes = [HasTenantRole]
    queryset = Job.objects.none()  # the model, for the schema; get_queryset scopes to the tenant
    filterset_class = JobFilter
    filter_backends = [DjangoFilterBackend, JobOrdering]
    pagination_class = CreatedAtCursorPagination

    @extend_schema_serializer(
        component_name="JobEnqueueInput",
        examples=[
            OpenApiExample(
                "Sleep for five seconds, once per key",
                value={
                    "kind": "jobs.sleep",
                    "payload": {"seconds": 5},
                    "priority": "high",
                    "idempotency_key": "nightly-2026-11-22",
                },
                request_only=True,
            ),
            OpenApiExample(
                "Run in an hour, after another job",
                value={
                    "kind": "jobs.noop",
                    "payload": {"note": "hello"},
                    "delay": 3600,
                    "depends_on": ["6f1c2a4e-8d0b-4c55-9a3e-1f2b3c4d5e6f"],
                },
                request_only=True,
            ),
        ],
    )
    class Input(PreparedFields):
        kind = serializers.CharField(max_length=100, help_text="A registered kind: see `kinds/`.")
        payload = serializers.DictField(default=dict, help_text="Checked by the kind.")
        priority = serializers.ChoiceField(
            choices=TENANT_PRIORITIES,
            required=False,
            help_text="Defaults to the kind's priority (transactional kinds high, bulk ones low).",
        )
        delay = serializers.IntegerField(
            min_value=0, max_value=MAX_DELAY, required=False, help_text="Seconds to wait first."
        )
        run_at = serializers.DateTimeField(required=False, help_text="When to run; not with delay.")
        timeout = serializers.IntegerField(
            min_value=1,
            max_value=TENANT_LIMITS["max_timeout"],
            required=False,
            help_text="Seconds per attempt.",
        )
        max_attempts = serializers.IntegerField(
            min_value=1, max_value=TENANT_LIMITS["max_attempts"], required=False
        )
        idempotency_key = serializers.CharField(
            max_length=200,
            required=False,
            help_text=f"Or the {IDEMPOTENCY_HEADER} header: while a job with this key is "
            "active, the same request returns it instead of a new one.",
        )
        depends_on = serializers.ListField(
            child=serializers.UUIDField(),
            max_length=100,
            default=list,
            help_text="Ids of this tenant's jobs that must succeed first.",
        )
        unique_for = serializers.IntegerField(
            min_value=1,
            max_value=MAX_WINDOW,
            required=False,
            help_text="Seconds: the key's job created within them is returned, even finished.",
        )
        debounce = serializers.IntegerField(
            min_value=1,
            max_value=MAX_WINDOW,
            required=False,
            help_text="Seconds to wait; an enqueue with the key meanwhile replaces the payload "
            "and starts the wait again.",
        )
        throttle = serializers.IntegerField(
            min_value=1,
            max_value=MAX_WINDOW,
            required=False,
            help_text="Seconds: one job with the key per window; later ones answer 429.",
        )

        def validate_kind(self, name: str) -> JobKind:
            """A public kind the caller's role may enqueue (every enqueueing input uses this)."""
            try:
                kind = get_kind(name)
            except UnknownKind as error:
                raise ValidationError(f"{error} See GET /api/v1/kinds/.") from None
            role = getattr(self.context.get("request"), "role", None)
            refused = tenant_option_errors(kind, role=role)
            if refused:
                raise ValidationError(refused["kind"])
            return kind

        def validate_run_at(self, run_at: datetime) -> datetime:
            if run_at > timezone.now() + timedelta(seconds=MAX_DELAY):
                raise ValidationError("Choose a time at most a year ahead.")
            return run_at

        def validate_depends_on(self, ids: list[UUID]) -> list[Job]:
            if not ids:
                return []  # the common case: no query
            tenant: Tenant = self.context["request"].tenant
            parents = list(list_jobs(tenant=tenant).filter(pk__in=ids))
            missing = sorted(set(map(str, ids)) - {str(parent.pk) for parent in parents})
            if missing:
                raise ValidationError(f"No job {missing[0]} in this tenant.")
            return parents

        def validate(self, data: dict[str, Any]) -> dict[str, Any]:
            if "delay" in data and "run_at" in data:
                raise ValidationError({"run_at": ["Give either delay or run_at, not both."]})
            refused = tenant_option_errors(
                data["kind"],
                role=self.context["request"].role,
                priority=data.get("priority"),
                timeout=data.get("timeout"),
                max_attempts=data.get("max_attempts"),
            )
            if refused:
                raise ValidationError(refused)
            for window in WINDOWS:
                if window in data:
                    data[window] = timedelta(seconds=data[window])
            data["idempotency_key"] = self._idempotency_key(data.get("idempotency_key", ""))
            data["payload"] = _validated_payload(data["kind"], data["payload"])
            return data

        def _idempotency_key(self, field: str) -> str:
            header = self.context["request"].headers.get(IDEMPOTENCY_HEADER, "").strip()
            if header and field and header != field:
                raise ValidationError(
                    {"idempotency_key": [f"It differs from the {IDEMPOTENCY_HEADER} header."]}
                )
            key = field or header
            if len(key) > 200:
                raise ValidationError({"idempotency_key": ["Keep the key to 200 characters."]})
            return key

    access_area = "jobs"

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return self.Input if self.request.method == "POST" else JobOutput

    def get_queryset(self) -> QuerySet[Job]:
        return list_jobs(tenant=tenant_request(self.request).tenant).select_related("created_by")

    @extend_schema(
        operation_id="jobs_list",
        parameters=[TENANT_PARAMETER],
        responses={200: JobOutput(many=True), **errors(*TENANT_ERRORS)},
        examples=[OpenApiExample("A page of jobs", value=JOB_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The tenant's jobs, newest first, filtered by the query and paginated by cursor."""
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="jobs_enqueue",
        parameters=[
            TENANT_PARAMETER,
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                location=OpenApiParameter.HEADER,
                required=False,
                description="The same as the `idempotency_key` field.",
            ),
        ],
        request=Input,
        responses={
            202: OpenApiResponse(
                JobOutput,
                description="Recorded; `pending` while Redis is unreachable, handed over later.",
            ),
            **errors(*TENANT_ERRORS, 409),
        },
        examples=[OpenApiExample("Enqueued", value=JOB_EXAMPLE, response_only=True)],
    )
    def post(self, request: TenantRequest) -> Response:
        """Enqueue a job of a registered kind with a payload the kind accepts."""
        data = self.Input(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        job = enqueue_job(tenant=request.tenant, by=request.user, **data.validated_data)
        return Response(JobOutput(job).data, status=status.HTTP_202_ACCEPTED)


def _validated_payload(kind: JobKind, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as the kind will receive it; its errors are nested under `payload`."""
    if _has_nul(payload):
        raise ValidationError({"payload": ["Text in the payload may not contain NUL characters."]})
    try:
        return kind.validate(payload)
    except ValidationError as error:
        detail = error.detail
        nested = detail["payload"] if isinstance(detail, dict) and "payload" in detail else detail
        raise ValidationError({"payload": nested}) from None


def _has_nul(value: Any) -> bool:
    """Whether any text in `value` holds a NUL character, which PostgreSQL's jsonb refuses."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class JobDetailView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "jobs"

    @extend_schema(
        parameters=[TENANT_PARAMETER, JOB_ID],
        responses={200: JobDetailOutput, **errors(*TENANT_ERRORS)},
        examples=[
            OpenApiExample(
                "A job with its recent log",
                value={
                    **JOB_EXAMPLE,
                    "error_traceback": "",
                    "depends_on": [],
                    "logs": [LOG_EXAMPLE],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: TenantRequest, job_id: str) -> Response:
        """The job with its progress, result, error and last log lines."""
        job = find_job(request, job_id)
        return Response(JobDetailOutput(job, context={"request": request}).data)


class JobCancelView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "jobs"

    @extend_schema(
        parameters=[TENANT_PARAMETER, JOB_ID],
        request=None,
        responses={200: JobOutput, **errors(*TENANT_ERRORS, 409, 503)},
        examples=[
            OpenApiExample(
                "Canceled before it ran",
                value={**JOB_EXAMPLE, "status": "canceled"},
                response_only=True,
            )
        ],
    )
    def post(self, request: TenantRequest, job_id: str) -> Response:
        """A waiting job never runs; a running one is told to stop (`cancel_requested_at`)."""
        job = find_job(request, job_id)
        if job.status == Job.Status.STARTED:
            require_redis()
        job = cancel_job(job, by=request.user)
        return Response(JobOutput(job).data)


class JobRetryView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "jobs"

    @extend_schema(
        parameters=[TENANT_PARAMETER, JOB_ID],
        request=None,
        responses={202: JobOutput, **errors(*TENANT_ERRORS, 409, 503)},
        examples=[
            OpenApiExample(
                "Handed over again", value={**JOB_EXAMPLE, "attempt": 0}, response_only=True
            )
        ],
    )
    def post(self, request: TenantRequest, job_id: str) -> Response:
        """Give a failed or canceled job a fresh set of attempts."""
        job = find_job(request, job_id)
        require_redis()
        job = retry_job(job, by=request.user)
        return Response(JobOutput(job).data, status=status.HTTP_202_ACCEPTED)


class JobRetryNowView(APIView):
    permission_classes = [HasTenantRole]
    access_area = "jobs"

    @extend_schema(
        parameters=[TENANT_PARAMETER, JOB_ID],
        request=None,
        responses={202: JobOutput, **errors(*TENANT_ERRORS, 409, 503)},
        examples=[
            OpenApiExample("Due now", value={**JOB_EXAMPLE, "status": "queued"}, response_only=True)
        ],
    )
    def post(self, request: TenantRequest, job_id: str) -> Response:
        """Run a retrying or scheduled job now instead of at its due time (attempts unchanged)."""
        job = find_job(request, job_id)
        require_redis()
        job = retry_now(job, by=request.user)
        return Response(JobOutput(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_serializer(
    component_name="JobBulkInput",
    examples=[
        OpenApiExample(
            "These jobs",
            value={"ids": ["6f1c2a4e-8d0b-4c55-9a3e-1f2b3c4d5e6f"]},
            request_only=True,
        ),
        OpenApiExample("Every job the query's filters match", value={}, request_only=True),
    ],
)
class BulkInput(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.UUIDField(),
        max_length=MAX_BULK_IDS,
        default=list,
        help_text="These jobs (among those the query's filters match, if any are given).",
    )


class JobBulkView(generics.GenericAPIView):
    """The jobs a bulk operation means: `ids` in the body and/or the list's filters in the query."""

    permission_classes = [HasTenantRole]
    access_area = "jobs"
    queryset = Job.objects.none()  # the model, for the schema
    filterset_class = JobFilter
    filter_backends = [DjangoFilterBackend]
    serializer_class = BulkInput
    pagination_class = None

    def selected_jobs(self, request: TenantRequest) -> QuerySet[Job]:
        body = BulkInput(data=request.data)
        body.is_valid(raise_exception=True)
        ids = body.validated_data["ids"]
        jobs = self.filter_queryset(list_jobs(tenant=request.tenant))
        if ids:
            return jobs.filter(pk__in=ids)
        if not any(request.query_params.get(name) for name in JobFilter.base_filters):
            raise ValidationError(
                {"ids": ["Give ids, or at least one filter in the query, e.g. ?status=failed."]}
            )
        return jobs


class JobBulkCancelView(JobBulkView):
    @extend_schema(
        parameters=[TENANT_PARAMETER],
        filters=True,
        request=BulkInput,
        responses={200: BulkCancelOutput, **errors(*TENANT_ERRORS, 503)},
        examples=[
            OpenApiExample(
                "Counts",
                value={"canceled": 12, "cancel_requested": 1, "skipped": 3},
                response_only=True,
            )
        ],
    )
    def post(self, request: TenantRequest) -> Response:
        """Cancel the chosen jobs that have not ended; answers how many of each outcome."""
        jobs = self.selected_jobs(request)
        require_redis()
        return Response(BulkCancelOutput(cancel_jobs(jobs, by=request.user)).data)


class JobBulkRetryView(JobBulkView):
    @extend_schema(
        parameters=[TENANT_PARAMETER],
        filters=True,
        request=BulkInput,
        responses={200: BulkRetryOutput, **errors(*TENANT_ERRORS, 503)},
        examples=[
            OpenApiExample("Counts", value={"retried": 40, "skipped": 2}, response_only=True)
        ],
    )
    def post(self, request: TenantRequest) -> Response:
        """Retry the chosen jobs that failed or were canceled; answers how many."""
        jobs = self.selected_jobs(request)
        require_redis()
        return Response(BulkRetryOutput(retry_jobs(jobs, by=request.user)).data)


class JobBulkDiscardView(JobBulkView):
    access_area = "job_discard"  # deletes for good, as the admin's discard action

    @extend_schema(
        parameters=[TENANT_PARAMETER],
        filters=True,
        request=BulkInput,
        responses={200: BulkDiscardOutput, **errors(*TENANT_ERRORS)},
        examples=[
            OpenApiExample("Counts", value={"discarded": 40, "skipped": 2}, response_only=True)
        ],
    )
    def post(self, request: TenantRequest) -> Response:
        """Delete the chosen failed jobs (dead letters) with their logs; others are kept."""
        jobs = self.selected_jobs(request)
        chosen = jobs.count()
        discarded = discard_jobs(jobs)
        counts = {"discarded": discarded, "skipped": chosen - discarded}
        return Response(BulkDiscardOutput(counts).data)


@extend_schema_serializer(
    component_name="JobBulkEnqueueInput",
    examples=[
        OpenApiExample(
            "Three no-ops, one of them keyed",
            value={
                "kind": "jobs.noop",
                "payloads": [{"note": "a"}, {"note": "b"}, {"note": "c"}],
                "priority": "low",
            },
            request_only=True,
        )
    ],
)
class BulkEnqueueInput(serializers.Serializer):
    kind = serializers.CharField(max_length=100, help_text="A registered kind: see `kinds/`.")
    payloads = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        max_length=MAX_BULK_ENQUEUE,
        help_text=f"One payload per job, at most {MAX_BULK_ENQUEUE}; each checked by the kind.",
    )
    priority = serializers.ChoiceField(choices=TENANT_PRIORITIES, default=Priority.NORMAL)
    delay = serializers.IntegerField(
        min_value=0, max_value=MAX_DELAY, required=False, help_text="Seconds to wait first."
    )

    validate_kind = JobListView.Input.validate_kind

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        problems: dict[str, Any] = {}
        checked = []
        for index, payload in enumerate(data["payloads"]):
            try:
                checked.append(_validated_payload(data["kind"], payload))
            except ValidationError as error:
                problems[str(index)] = cast(dict[str, Any], error.detail)["payload"]
        if problems:
            raise ValidationError({"payloads": problems})
        data["payloads"] = checked
        return data


class BulkEnqueueOutput(serializers.Serializer):
    count = serializers.IntegerField(help_text="Jobs in the answer, one per payload, in order.")
    jobs = JobOutput(many=True)


class JobBulkEnqueueView(generics.GenericAPIView):
    """`jobs/bulk/`: many jobs of one kind in one call, all or none."""

    permission_classes = [HasTenantRole]
    access_area = "jobs"
    queryset = Job.objects.none()  # the model, for the schema
    serializer_class = BulkEnqueueInput

    @extend_schema(
        operation_id="jobs_bulk_enqueue",
        parameters=[TENANT_PARAMETER],
        request=BulkEnqueueInput,
        responses={202: BulkEnqueueOutput, **errors(*TENANT_ERRORS)},
        examples=[
            OpenApiExample(
                "Enqueued", value={"count": 1, "jobs": [JOB_EXAMPLE]}, response_only=True
            )
        ],
    )
    def post(self, request: TenantRequest) -> Response:
        """Enqueue up to 1,000 jobs of one kind in one transaction: every payload is checked
        first, and one bad payload refuses them all (its errors under `payloads.<index>`)."""
        data = BulkEnqueueInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        options = data.validated_data
        jobs = enqueue_jobs(
            tenant=request.tenant,
            kind=options["kind"],
            payloads=options["payloads"],
            priority=options["priority"],
            delay=options.get("delay"),
            by=request.user,
        )
        body = {"count": len(jobs), "jobs": jobs}
        return Response(BulkEnqueueOutput(body).data, status=status.HTTP_202_ACCEPTED)


class TenantLogListView(generics.ListAPIView):
    """`jobs/logs/`: the log lines of all the tenant's jobs, newest first."""

    permission_classes = [HasTenantRole]
    access_area = "jobs"
    queryset = JobLog.objects.none()  # the model, for the schema
    serializer_class = JobLogOutput
    filterset_class = JobLogFilter
    filter_backends = [DjangoFilterBackend]
    pagination_class = CreatedAtCursorPagination

    def get_queryset(self) -> QuerySet[JobLog]:
        return tenant_logs(tenant_request(self.request).tenant)

    @extend_schema(
        operation_id="jobs_logs_tenant",
        parameters=[TENANT_PARAMETER],
        responses={200: TenantLogOutput(many=True), **errors(*TENANT_ERRORS)},
        examples=[
            OpenApiExample(
                "A page of log lines",
                value={**LOG_EXAMPLE, "job": JOB_EXAMPLE["id"]},
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Every log line of the tenant's jobs, newest first, filtered and paginated by cursor."""
        return super().get(request, *args, **kwargs)

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return TenantLogOutput


class JobLogListView(generics.ListAPIView):
    permission_classes = [HasTenantRole]
    access_area = "jobs"
    queryset = JobLog.objects.none()  # the model, for the schema
    serializer_class = JobLogOutput
    filter_backends: list[Any] = []
    pagination_class = LogPagination

    def get_queryset(self) -> QuerySet[JobLog]:
        return job_logs(find_job(tenant_request(self.request), self.kwargs["job_id"]))

    @extend_schema(
        parameters=[TENANT_PARAMETER, JOB_ID],
        responses={200: JobLogOutput(many=True), **errors(*TENANT_ERRORS)},
        examples=[OpenApiExample("A page of log lines", value=LOG_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The job's log, oldest first, paginated by cursor."""
        return super().get(request, *args, **kwargs)


urlpatterns: list[URLPattern] = [
    path("jobs/", JobListView.as_view(), name="job-list"),
    path("jobs/bulk-cancel/", JobBulkCancelView.as_view(), name="job-bulk-cancel"),
    path("jobs/bulk-retry/", JobBulkRetryView.as_view(), name="job-bulk-retry"),
    path("jobs/bulk-discard/", JobBulkDiscardView.as_view(), name="job-bulk-discard"),
    path("jobs/bulk/", JobBulkEnqueueView.as_view(), name="job-bulk-enqueue"),
    path("jobs/logs/", TenantLogListView.as_view(), name="tenant-logs"),
    # Ids are matched as text so that a malformed one answers a JSON 404, not Django's page.
    path("jobs/<str:job_id>/", JobDetailView.as_view(), name="job-detail"),
    path("jobs/<str:job_id>/cancel/", JobCancelView.as_view(), name="job-cancel"),
    path("jobs/<str:job_id>/retry/", JobRetryView.as_view(), name="job-retry"),
    path("jobs/<str:job_id>/retry-now/", JobRetryNowView.as_view(), name="job-retry-now"),
    path("jobs/<str:job_id>/logs/", JobLogListView.as_view(), name="job-logs"),
]
