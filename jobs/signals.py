"""Signals the job engine sends. Other apps connect to them; jobs imports none of those apps."""

from django.dispatch import Signal

# Sent once a job has ended — succeeded, failed (dead-lettered) or canceled — with `job=`: by the
# runner in the worker after the outcome is recorded, or after the commit that canceled a waiting
# job. Receivers' errors are logged, not raised; `job.status` says how it ended.
job_finished = Signal()

# Sent after `job_finished` for jobs that ended together, with `jobs=` (a list): the jobs of one
# batch of successes recorded in one statement, or the one job that ended. A receiver with work
# for each (a workflow's steps) can do it for them all at once.
jobs_finished = Signal()

# Sent after each scheduled health check is stored, with `check=` (a HealthCheck), inside the
# transaction that holds the check lock: receivers (the alert rules) run once per check.
health_checked = Signal()
