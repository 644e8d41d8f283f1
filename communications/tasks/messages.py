"""messages: tasks."""
