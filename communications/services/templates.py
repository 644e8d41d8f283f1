"""templates: services."""
