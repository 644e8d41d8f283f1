"""templates: tasks."""
