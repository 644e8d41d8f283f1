"""Contact growth: new contacts per day, by source, and the tenant's totals."""

from typing import Any

from django.db.models import Count, Q
from django.db.models.functions import TruncDate

from communications.models import Contact
from reports.types.base import (
    DATE,
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

TITLE = "Contact growth"
FILTERS: tuple[str, ...] = ()
SOURCES = list(Contact.Source)


def build(ctx: BuildContext) -> ReportData:
    period = ctx.period
    contacts = Contact.objects.for_tenant(ctx.tenant)
    created = contacts.filter(created_at__gte=period.since, created_at__lt=period.until)
    by_source = {source: Count("pk", filter=Q(source=source)) for source in SOURCES}
    rows = (
        created.annotate(day=TruncDate("created_at", tzinfo=period.zone))
        .values("day")
        .annotate(total=Count("pk"), **by_source)
        .order_by("day")
    )
    found: dict[Any, dict[str, Any]] = {row["day"]: dict(row) for row in rows}
    ctx.progress(50, "Days counted")
    empty: dict[str, Any] = {"total": 0, **dict.fromkeys(SOURCES, 0)}
    daily = [{**empty, **found.get(day, {}), "day": day} for day in period.days]
    before = contacts.filter(created_at__lt=period.since).count()
    totals = created.aggregate(
        total=Count("pk"), opted_out=Count("pk", filter=Q(opted_out=True)), **by_source
    )
    return ReportData(
        title=TITLE,
        tenant_name=ctx.tenant.name,
        start=period.start,
        end=period.end,
        time_zone=period.time_zone,
        filters={},
        generated_at=ctx.generated_at,
        figures=_figures(totals, before),
        charts=_charts(daily, before),
        tables=[_daily_table(daily, before), _source_table(totals)],
    )


def _figures(totals: dict[str, Any], before: int) -> list[Figure]:
    return [
        Figure("New contacts", totals["total"]),
        Figure("Contacts at start", before),
        Figure("Contacts at end", before + totals["total"]),
        Figure("Growth", rate(totals["total"], before) if before else 0.0, PERCENT),
        *(Figure(f"From {source.label}", totals[source]) for source in SOURCES),
        Figure("New and opted out", totals["opted_out"]),
    ]


def _charts(daily: list[dict[str, Any]], before: int) -> list[Chart]:
    labels = [f"{row['day']:%m-%d}" for row in daily]
    running, cumulative = before, []
    for row in daily:
        running += row["total"]
        cumulative.append(running)
    return [
        Chart(
            "New contacts per day",
            "bar",
            labels,
            [(source.label, [row[source] for row in daily]) for source in SOURCES],
        ),
        Chart("Contacts in total", "line", labels, [("Contacts", cumulative)]),
    ]


def _daily_table(daily: list[dict[str, Any]], before: int) -> Table:
    rows, running = [], before
    for row in daily:
        running += row["total"]
        rows.append([row["day"], row["total"], *(row[source] for source in SOURCES), running])
    return Table(
        "days",
        "New contacts per day",
        [
            Column("Day", DATE),
            Column("New", INT),
            *(Column(source.label, INT) for source in SOURCES),
            Column("Total at end of day", INT),
        ],
        rows,
    )


def _source_table(totals: dict[str, Any]) -> Table:
    return Table(
        "sources",
        "New contacts by source",
        [Column("Source"), Column("New", INT), Column("Share", PERCENT)],
        [
            [source.label, totals[source], rate(totals[source], totals["total"])]
            for source in SOURCES
        ],
    )
