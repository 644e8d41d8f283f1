"""webhooks: selectors."""
