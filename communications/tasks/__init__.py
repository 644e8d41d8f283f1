"""Job kinds of the communications app, one module per area that has kinds."""

from communications.tasks import (  # noqa: F401
    campaigns,
    imports,
    messages,
    notifications,
    receipts,
    webhooks,
)
