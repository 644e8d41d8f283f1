"""Admin: schedules."""
