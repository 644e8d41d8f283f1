"""Admin display helpers shared by every app: status badges, durations, times, JSON, links."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs.redaction import redact


def status_badge(status: str) -> SafeString:
    return format_html('<span class="cv-badge cv-{}">{}</span>', status, status)


def human_duration(delta: timedelta | None) -> str:
    """'850 ms', '12.3 s', '4 min 5 s', '2 h 3 min'; '' when unknown."""
    if delta is None:
        return ""
    seconds = max(delta.total_seconds(), 0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def duration_between(start: datetime | None, end: datetime | None) -> timedelta | None:
    if start is None:
        return None
    return (end or timezone.now()) - start


def short_time(value: datetime | None) -> SafeString | str:
    if value is None:
        return "–"
    local = timezone.localtime(value)
    shown = local.strftime("%H:%M:%S" if local.date() == timezone.localdate() else "%b %d %H:%M")
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), local, shown)


def pretty_json(value: Any) -> SafeString:
    text = json.dumps(
        redact(value), indent=2, sort_keys=True, ensure_ascii=False, cls=DjangoJSONEncoder
    )
    return format_html('<pre class="cv-json">{}</pre>', text)


def job_link(job_id: Any, label: str | None = None) -> SafeString:
    url = reverse("admin:jobs_job_change", args=[job_id])
    return format_html('<a href="{}">{}</a>', url, label or str(job_id)[:8])


def jobs_link(label: str, **params: Any) -> SafeString:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return format_html('<a href="{}?{}">{}</a>', reverse("admin:jobs_job_changelist"), query, label)
