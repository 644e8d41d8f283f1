"""contacts: admin."""
