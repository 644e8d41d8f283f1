"""Messaging delivery: sent, failed and skipped by channel and day, and the campaigns.

Counts come from the hourly message roll-ups; a report for one campaign counts its messages.
"""

from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from communications.models import Campaign, Channel, Message
from reports.models import MessageHourlyStat
from reports.types.base import (
    DATE,
    DATETIME,
    INT,
    PERCENT,
    SECONDS,
    BuildContext,
    Chart,
    Column,
    Figure,
    ReportData,
    Table,
    rate,
    rate_or_none,
    seconds,
)

TITLE = "Messaging delivery"
FILTERS = ("channel", "campaign")
SENT, FAILED, SKIPPED = Message.Status.SENT, Message.Status.FAILED, Message.Status.SKIPPED
CAMPAIGN_ROWS = 500


def _counts(count: str) -> dict[str, Any]:
    return {
        "total": Sum(count),
        "sent": Sum(count, filter=Q(status=SENT)),
        "failed": Sum(count, filter=Q(status=FAILED)),
        "skipped": Sum(count, filter=Q(status=SKIPPED)),
    }


def _source(ctx: BuildContext) -> tuple[QuerySet[Any], dict[str, Any], str]:
    """(rows, aggregates, time field): roll-ups, or one campaign's messages."""
    period, channel = ctx.period, ctx.filters.get("channel", "")
    if campaign := ctx.filters.get("campaign"):
        rows: QuerySet[Any] = Message.objects.for_tenant(ctx.tenant).filter(
            campaign_id=campaign, created_at__gte=period.since, created_at__lt=period.until
        )
        aggregates = {
            "total": Count("pk"),
            "sent": Count("pk", filter=Q(status=SENT)),
            "failed": Count("pk", filter=Q(status=FAILED)),
            "skipped": Count("pk", filter=Q(status=SKIPPED)),
            "latency_n": Count("pk", filter=Q(sent_at__isnull=False)),
            "latency_total": Sum(F("sent_at") - F("created_at")),
        }
        time_field = "created_at"
    else:
        rows = MessageHourlyStat.objects.for_tenant(ctx.tenant).filter(
            hour__gte=period.since, hour__lt=period.until
        )
        aggregates = {
            **_counts("count"),
            "latency_n": Sum("latency_count"),
            "latency_total": Sum("latency_sum"),
        }
        time_field = "hour"
    if channel:
        rows = rows.filter(channel=channel)
    return rows, aggregates, time_field


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    clean = {key: value or 0 for key, value in row.items()}
    total = clean["latency_total"]
    clean["latency_total"] = total.total_seconds() if hasattr(total, "total_seconds") else total
    return clean


def build(ctx: BuildContext) -> ReportData:
    rows, aggregates, time_field = _source(ctx)
    totals = _clean(rows.aggregate(**aggregates))
    by_day = (
        rows.annotate(day=TruncDate(time_field, tzinfo=ctx.period.zone))
        .values("day", "channel")
        .annotate(**aggregates)
        .order_by("day", "channel")
    )
    daily_channel = [_clean(dict(row)) for row in by_day]
    ctx.progress(40, "Days counted")
    by_channel = [
        _clean(dict(row))
        for row in rows.values("channel").annotate(**aggregates).order_by("channel")
    ]
    campaigns = _campaigns(ctx)
    ctx.progress(70, "Campaigns listed")
    daily = _per_day(ctx, daily_channel)
    return ReportData(
        title=TITLE,
        tenant_name=ctx.tenant.name,
        start=ctx.period.start,
        end=ctx.period.end,
        time_zone=ctx.period.time_zone,
        filters=_filters_shown(ctx),
        generated_at=ctx.generated_at,
        figures=_figures(totals, len(campaigns.rows)),
        charts=_charts(daily),
        tables=[
            _day_table(daily_channel),
            _channel_table(by_channel),
            _receipts_table(ctx),
            campaigns,
        ],
        notes=["Messages count on the day they were created; latency is from queued to sent."],
    )


def _filters_shown(ctx: BuildContext) -> dict[str, str]:
    shown = {}
    if channel := ctx.filters.get("channel"):
        shown["channel"] = Channel(channel).label if channel in Channel.values else channel
    if campaign := ctx.filters.get("campaign"):
        found = Campaign.objects.for_tenant(ctx.tenant).filter(pk=campaign).first()
        shown["campaign"] = found.name if found else campaign
    return shown


def _per_day(ctx: BuildContext, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    days = {
        day: {"day": day, "total": 0, "sent": 0, "failed": 0, "skipped": 0}
        for day in ctx.period.days
    }
    for row in rows:
        for key in ("total", "sent", "failed", "skipped"):
            days[row["day"]][key] += row[key]
    return list(days.values())


def _figures(totals: dict[str, Any], campaigns: int) -> list[Figure]:
    latency = totals["latency_total"] / totals["latency_n"] if totals["latency_n"] else None
    return [
        Figure("Messages", totals["total"]),
        Figure("Sent", totals["sent"]),
        Figure("Failed", totals["failed"]),
        Figure("Skipped", totals["skipped"]),
        Figure("Delivery rate", rate(totals["sent"], totals["sent"] + totals["failed"]), PERCENT),
        Figure("Average send latency", seconds(latency), SECONDS),
        Figure("Campaigns", campaigns),
    ]


def _charts(daily: list[dict[str, Any]]) -> list[Chart]:
    labels = [f"{row['day']:%m-%d}" for row in daily]
    return [
        Chart(
            "Messages per day",
            "bar",
            labels,
            [
                ("Sent", [row["sent"] for row in daily]),
                ("Failed", [row["failed"] for row in daily]),
                ("Skipped", [row["skipped"] for row in daily]),
            ],
        ),
        Chart(
            "Delivery rate per day",
            "line",
            labels,
            [
                (
                    "Delivery rate",
                    [rate_or_none(row["sent"], row["sent"] + row["failed"]) for row in daily],
                )
            ],
            unit="%",
        ),
    ]


COUNTS = [
    Column("Messages", INT),
    Column("Sent", INT),
    Column("Failed", INT),
    Column("Skipped", INT),
    Column("Delivery rate", PERCENT),
]


def _count_cells(row: dict[str, Any]) -> list[Any]:
    return [
        row["total"],
        row["sent"],
        row["failed"],
        row["skipped"],
        rate(row["sent"], row["sent"] + row["failed"]),
    ]


def _label(channel: str) -> str:
    return Channel(channel).label if channel in Channel.values else channel


def _day_table(rows: list[dict[str, Any]]) -> Table:
    return Table(
        "days",
        "Messages per day and channel",
        [Column("Day", DATE), Column("Channel"), *COUNTS],
        [[row["day"], _label(row["channel"]), *_count_cells(row)] for row in rows],
    )


RECEIPTS = [
    Message.Delivery.DELIVERED,
    Message.Delivery.READ,
    Message.Delivery.BOUNCED,
    Message.Delivery.COMPLAINED,
    Message.Delivery.FAILED,
]


def _receipts_table(ctx: BuildContext) -> Table:
    """What providers reported after sending, by channel (messages created in the period)."""
    messages = Message.objects.for_tenant(ctx.tenant).filter(
        status=SENT, created_at__gte=ctx.period.since, created_at__lt=ctx.period.until
    )
    if channel := ctx.filters.get("channel"):
        messages = messages.filter(channel=channel)
    if campaign := ctx.filters.get("campaign"):
        messages = messages.filter(campaign_id=campaign)
    counts = {status: Count("pk", filter=Q(delivery_status=status)) for status in RECEIPTS}
    rows: QuerySet[Any] = (
        messages.values("channel").annotate(sent=Count("pk"), **counts).order_by("channel")
    )
    return Table(
        "receipts",
        "Delivery receipts",
        [Column("Channel"), Column("Sent", INT)]
        + [Column(Message.Delivery(status).label, INT) for status in RECEIPTS],
        [
            [_label(row["channel"]), row["sent"], *(row[status] for status in RECEIPTS)]
            for row in rows
        ],
        note="Each sent message counts once, at its latest receipt (read after delivered).",
    )


def _channel_table(rows: list[dict[str, Any]]) -> Table:
    return Table(
        "channels",
        "By channel",
        [Column("Channel"), *COUNTS, Column("Average send latency (s)", SECONDS)],
        [
            [
                _label(row["channel"]),
                *_count_cells(row),
                seconds(row["latency_total"] / row["latency_n"]) if row["latency_n"] else None,
            ]
            for row in rows
        ],
    )


def _campaigns(ctx: BuildContext) -> Table:
    campaigns = Campaign.objects.for_tenant(ctx.tenant).filter(
        created_at__gte=ctx.period.since, created_at__lt=ctx.period.until
    )
    if channel := ctx.filters.get("channel"):
        campaigns = campaigns.filter(channel=channel)
    if campaign := ctx.filters.get("campaign"):
        campaigns = campaigns.filter(pk=campaign)
    zone = ctx.period.zone
    return Table(
        "campaigns",
        "Campaigns",
        [
            Column("Created", DATETIME),
            Column("Campaign"),
            Column("Channel"),
            Column("Status"),
            Column("Recipients", INT),
            Column("Sent", INT),
            Column("Failed", INT),
            Column("Skipped", INT),
            Column("Delivery rate", PERCENT),
        ],
        [
            [
                c.created_at.astimezone(zone).replace(tzinfo=None),
                c.name,
                _label(c.channel),
                c.get_status_display(),
                c.recipients,
                c.sent,
                c.failed,
                c.skipped,
                rate(c.sent, c.sent + c.failed),
            ]
            for c in campaigns.order_by("-created_at")[:CAMPAIGN_ROWS]
        ],
    )
