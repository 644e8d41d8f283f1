"""messages: admin."""
