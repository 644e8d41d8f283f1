"""Signals the tenants app sends. Apps above it connect to them; tenants imports none of those."""

from django.dispatch import Signal

# Sent by `add_member` with `membership=`, inside its transaction (so what a receiver enqueues
# is handed over when it commits): someone joined a tenant.
member_added = Signal()
