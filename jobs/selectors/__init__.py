"""Reads of the job engine, one module per area: jobs, stats, queues (with health), schedules,
metrics."""
