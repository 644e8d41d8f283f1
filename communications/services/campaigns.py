"""campaigns: services."""
