"""The jobs app's admin: jobs and logs, schedules, once-markers and the queues dashboard."""

from jobs.admin import dashboard, jobs, markers, schedules

__all__ = ["dashboard", "jobs", "markers", "schedules"]
