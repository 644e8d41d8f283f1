"""Reads of the communications app, one module per area."""
