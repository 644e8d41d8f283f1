"""Every write to jobs, one module per area: jobs (enqueue, cancel, retry, follow-ups), queues,
schedules, clean-up, roll-ups; `inserts` writes new job rows fast."""
