"""imports: admin."""
