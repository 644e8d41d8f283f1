"""Job kinds of the communications app, one module per area that has kinds."""

from communications.tasks import campaigns, imports, messages, receipts, webhooks  # noqa: F401
