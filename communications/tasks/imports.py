"""imports: tasks."""
