"""API routes of the jobs app, under /api/v1/."""

from django.urls import URLPattern, URLResolver

from jobs.api import batches, jobs, kinds, queues, schedules, stats

urlpatterns: list[URLPattern | URLResolver] = [
    *stats.urlpatterns,  # before jobs/<job_id>/, which would take `stats` for an id
    *jobs.urlpatterns,
    *kinds.urlpatterns,
    *queues.urlpatterns,
    *schedules.urlpatterns,
    *batches.urlpatterns,
]
