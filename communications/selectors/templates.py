"""templates: selectors."""
