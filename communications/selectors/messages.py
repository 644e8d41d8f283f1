"""messages: selectors."""
