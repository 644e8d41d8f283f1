"""notifications: tasks."""
