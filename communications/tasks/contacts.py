"""contacts: tasks."""
