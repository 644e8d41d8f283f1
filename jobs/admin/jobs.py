"""Admin: jobs."""
