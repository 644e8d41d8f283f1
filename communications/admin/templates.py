"""templates: admin."""
