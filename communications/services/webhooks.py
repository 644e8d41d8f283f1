"""webhooks: services."""
