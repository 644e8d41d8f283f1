"""The jobs app's admin: jobs and logs, batches, schedules, once-markers and the queues
dashboard."""

from jobs.admin import batches, dashboard, jobs, markers, schedules

__all__ = ["batches", "dashboard", "jobs", "markers", "schedules"]
