"""campaigns: admin."""
