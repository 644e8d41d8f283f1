"""contacts: services."""
