"""Checking what a report is asked for: type, format, period, time zone and filters."""

import zoneinfo
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from reports.models import ReportFormat, ReportType
from reports.types import get_type
from reports.types.base import Period
from tenants.models import Tenant

FILTER_FIELDS = ("queue", "kind", "channel", "campaign", "endpoint")


def max_span_days() -> int:
    return settings.REPORTS_MAX_SPAN_DAYS


class ReportRequest(serializers.Serializer):
    """A report request; `time_zone` defaults to the tenant's (context `tenant`)."""

    type = serializers.ChoiceField(choices=ReportType.choices)
    format = serializers.ChoiceField(choices=ReportFormat.choices, default=ReportFormat.PDF)
    start = serializers.DateField(help_text="First day, in the report's time zone.")
    end = serializers.DateField(help_text="Last day (included).")
    time_zone = serializers.CharField(
        max_length=64, required=False, help_text="IANA name; default the tenant's time zone."
    )
    queue = serializers.ChoiceField(choices=list(settings.CONVEYOR_QUEUES), required=False)
    kind = serializers.CharField(max_length=100, required=False)
    channel = serializers.CharField(max_length=20, required=False)
    campaign = serializers.IntegerField(min_value=1, required=False, help_text="A campaign id.")
    endpoint = serializers.UUIDField(required=False, help_text="A webhook endpoint id.")

    def validate_time_zone(self, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
            raise serializers.ValidationError(
                f"{value!r} is not a known time zone (e.g. Europe/Paris)."
            ) from error
        return value

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        start, end = data["start"], data["end"]
        if end < start:
            raise serializers.ValidationError({"end": ["The end is before the start."]})
        if (end - start).days + 1 > max_span_days():
            raise serializers.ValidationError(
                {"end": [f"A report covers at most {max_span_days()} days."]}
            )
        if start > timezone.localdate() + timedelta(days=1):
            raise serializers.ValidationError({"start": ["The start is in the future."]})
        info = get_type(data["type"])
        unused = [
            name for name in FILTER_FIELDS if data.get(name) and info and name not in info.filters
        ]
        if unused:
            raise serializers.ValidationError(
                {
                    name: [f"{info.title if info else ''} reports have no {name} filter."]
                    for name in unused
                }
            )
        tenant: Tenant | None = self.context.get("tenant")
        data.setdefault("time_zone", tenant.time_zone if tenant else "UTC")
        return data


def stored_parameters(data: dict[str, Any]) -> dict[str, Any]:
    """What a Report keeps in `parameters`: the period, time zone and the filters given."""
    stored = {
        "start": data["start"].isoformat(),
        "end": data["end"].isoformat(),
        "time_zone": data["time_zone"],
    }
    stored.update({name: str(data[name]) for name in FILTER_FIELDS if data.get(name)})
    return stored


def period_of(parameters: dict[str, Any]) -> Period:
    return Period(
        start=date.fromisoformat(parameters["start"]),
        end=date.fromisoformat(parameters["end"]),
        time_zone=parameters["time_zone"],
    )


def filters_of(parameters: dict[str, Any]) -> dict[str, str]:
    return {name: str(parameters[name]) for name in FILTER_FIELDS if parameters.get(name)}
