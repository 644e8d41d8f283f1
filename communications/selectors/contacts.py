"""contacts: selectors."""
