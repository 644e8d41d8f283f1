"""API routes of the jobs app, under /api/v1/."""

from django.urls import URLPattern, URLResolver

from jobs.api import jobs, queues, schedules

urlpatterns: list[URLPattern | URLResolver] = [
    *jobs.urlpatterns,
    *queues.urlpatterns,
    *schedules.urlpatterns,
]
