"""The jobs app's admin: jobs and logs, schedules, and the queues dashboard."""

from jobs.admin import dashboard, jobs, schedules

__all__ = ["dashboard", "jobs", "schedules"]
