"""Signals the job engine sends. Other apps connect to them; jobs imports none of those apps."""

from django.dispatch import Signal

# Sent by the runner once a job has ended succeeded or failed (dead-lettered), with `job=`.
# Receivers run in the worker after the outcome is recorded; their errors are logged, not raised.
job_finished = Signal()
