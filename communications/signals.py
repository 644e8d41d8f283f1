"""Signals communications sends. Apps above it connect to them; communications imports none."""

from django.dispatch import Signal

# Sent after the commit that published an event, with `tenant=` and `event=` (the body webhook
# endpoints receive: id, type, created, tenant, data). Receivers' errors are logged, not raised.
event_published = Signal()
