"""campaigns: selectors."""
