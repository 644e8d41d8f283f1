"""campaigns: tasks."""
