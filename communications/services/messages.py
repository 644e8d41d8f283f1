"""messages: services."""
