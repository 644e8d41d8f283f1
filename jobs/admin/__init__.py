"""The jobs app's admin: jobs and logs, batches, schedules, and the queues dashboard."""

from jobs.admin import batches, dashboard, jobs, schedules

__all__ = ["batches", "dashboard", "jobs", "schedules"]
