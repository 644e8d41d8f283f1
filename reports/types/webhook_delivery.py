"""Webhook delivery: success rate and latency per endpoint, deliveries per day, dead letters."""

from typing import Any
from uuid import UUID

from django.db.models import Avg, Count, Q, QuerySet
from django.db.models.functions import TruncDate

from communications.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from jobs.selectors.stats import Percentile
from reports.types.base import (
    DATE,
    DATETIME,
    FLOAT,
    INT,
    PERCENT,
    BuildContext,
    Chart,
    Column,
    Figure,
    ReportData,
    Table,
    rate,
)

TITLE = "Webhook delivery"
FILTERS = ("endpoint",)
DEAD_ROWS = 1000
Status = WebhookDelivery.Status
COUNTS = {
    "total": Count("pk"),
    "succeeded": Count("pk", filter=Q(status=Status.SUCCEEDED)),
    "failed": Count("pk", filter=Q(status=Status.FAILED)),
    "waiting": Count("pk", filter=~Q(status__in=WebhookDelivery.FINISHED)),
}


def _deliveries(ctx: BuildContext) -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.filter(
        tenant=ctx.tenant, created_at__gte=ctx.period.since, created_at__lt=ctx.period.until
    )
    if endpoint := ctx.filters.get("endpoint"):
        deliveries = deliveries.filter(endpoint_id=UUID(endpoint))
    return deliveries


def _attempts(ctx: BuildContext) -> QuerySet[WebhookAttempt]:
    attempts = WebhookAttempt.objects.for_tenant(ctx.tenant).filter(
        started_at__gte=ctx.period.since, started_at__lt=ctx.period.until
    )
    if endpoint := ctx.filters.get("endpoint"):
        attempts = attempts.filter(delivery__endpoint_id=UUID(endpoint))
    return attempts


def build(ctx: BuildContext) -> ReportData:
    deliveries = _deliveries(ctx)
    totals = deliveries.aggregate(**COUNTS)
    latency = _attempts(ctx).aggregate(
        attempts=Count("pk"), average=Avg("duration_ms"), p95=Percentile("duration_ms", 0.95)
    )
    ctx.progress(30, "Deliveries counted")
    daily_rows = {
        row["day"]: row
        for row in deliveries.annotate(day=TruncDate("created_at", tzinfo=ctx.period.zone))
        .values("day")
        .annotate(**COUNTS)
    }
    empty = dict.fromkeys(COUNTS, 0)
    daily: list[dict[str, Any]] = [
        {**empty, **daily_rows.get(day, {}), "day": day} for day in ctx.period.days
    ]
    endpoints = _endpoint_table(ctx, deliveries)
    ctx.progress(60, "Endpoints counted")
    return ReportData(
        title=TITLE,
        tenant_name=ctx.tenant.name,
        start=ctx.period.start,
        end=ctx.period.end,
        time_zone=ctx.period.time_zone,
        filters=_filters_shown(ctx),
        generated_at=ctx.generated_at,
        figures=[
            Figure("Deliveries", totals["total"]),
            Figure("Succeeded", totals["succeeded"]),
            Figure("Dead letters", totals["failed"]),
            Figure("Still retrying", totals["waiting"]),
            Figure(
                "Success rate",
                rate(totals["succeeded"], totals["succeeded"] + totals["failed"]),
                PERCENT,
            ),
            Figure("Attempts", latency["attempts"]),
            Figure("Average latency (ms)", _ms(latency["average"]), FLOAT),
            Figure("Latency p95 (ms)", _ms(latency["p95"]), FLOAT),
        ],
        charts=[
            Chart(
                "Deliveries per day",
                "bar",
                [f"{row['day']:%m-%d}" for row in daily],
                [
                    ("Succeeded", [row["succeeded"] for row in daily]),
                    ("Failed", [row["failed"] for row in daily]),
                    ("Retrying", [row["waiting"] for row in daily]),
                ],
            )
        ],
        tables=[_day_table(daily), endpoints, _dead_letters(ctx, deliveries)],
        notes=["Deliveries count on the day their event was published; latency is per attempt."],
    )


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _filters_shown(ctx: BuildContext) -> dict[str, str]:
    if not (endpoint := ctx.filters.get("endpoint")):
        return {}
    found = WebhookEndpoint.objects.for_tenant(ctx.tenant).filter(pk=endpoint).first()
    return {"endpoint": found.url if found else endpoint}


def _day_table(daily: list[dict[str, Any]]) -> Table:
    return Table(
        "days",
        "Deliveries per day",
        [
            Column("Day", DATE),
            Column("Deliveries", INT),
            Column("Succeeded", INT),
            Column("Dead letters", INT),
            Column("Retrying", INT),
            Column("Success rate", PERCENT),
        ],
        [
            [
                r["day"],
                r["total"],
                r["succeeded"],
                r["failed"],
                r["waiting"],
                rate(r["succeeded"], r["succeeded"] + r["failed"]),
            ]
            for r in daily
        ],
    )


def _endpoint_table(ctx: BuildContext, deliveries: QuerySet[WebhookDelivery]) -> Table:
    counts: dict[Any, dict[str, Any]] = {
        row["endpoint_id"]: dict(row) for row in deliveries.values("endpoint_id").annotate(**COUNTS)
    }
    latencies = {
        row["delivery__endpoint_id"]: row
        for row in _attempts(ctx)
        .values("delivery__endpoint_id")
        .annotate(
            attempts=Count("pk"), average=Avg("duration_ms"), p95=Percentile("duration_ms", 0.95)
        )
    }
    endpoints = WebhookEndpoint.objects.for_tenant(ctx.tenant).filter(
        pk__in=set(counts) | set(latencies)
    )
    rows = []
    for endpoint in endpoints.order_by("url"):
        count = counts.get(endpoint.pk, dict.fromkeys(COUNTS, 0))
        latency = latencies.get(endpoint.pk, {"attempts": 0, "average": None, "p95": None})
        rows.append(
            [
                endpoint.url,
                "active" if endpoint.is_active else "disabled",
                count["total"],
                count["succeeded"],
                count["failed"],
                rate(count["succeeded"], count["succeeded"] + count["failed"]),
                latency["attempts"],
                _ms(latency["average"]),
                _ms(latency["p95"]),
            ]
        )
    return Table(
        "endpoints",
        "By endpoint",
        [
            Column("Endpoint"),
            Column("State"),
            Column("Deliveries", INT),
            Column("Succeeded", INT),
            Column("Dead letters", INT),
            Column("Success rate", PERCENT),
            Column("Attempts", INT),
            Column("Average latency (ms)", FLOAT),
            Column("Latency p95 (ms)", FLOAT),
        ],
        rows,
    )


def _dead_letters(ctx: BuildContext, deliveries: QuerySet[WebhookDelivery]) -> Table:
    dead = (
        deliveries.filter(status=Status.FAILED).select_related("endpoint").order_by("-created_at")
    )
    zone = ctx.period.zone
    return Table(
        "dead_letters",
        f"Dead letters (latest {DEAD_ROWS:,})",
        [
            Column("Created", DATETIME),
            Column("Endpoint"),
            Column("Event"),
            Column("Attempts", INT),
            Column("Last response", INT),
            Column("Last error"),
            Column("Delivery id", printed=False),
        ],
        [
            [
                d.created_at.astimezone(zone).replace(tzinfo=None),
                d.endpoint.url,
                d.event_type,
                d.attempts,
                d.last_response_code,
                d.last_error or d.last_response_excerpt[:160],
                str(d.pk),
            ]
            for d in dead[:DEAD_ROWS]
        ],
    )
