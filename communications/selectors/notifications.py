"""notifications: selectors."""
