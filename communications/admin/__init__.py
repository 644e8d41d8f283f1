"""Admin of the communications app, one module per area."""

from communications.admin import (  # noqa: F401
    campaigns,
    contacts,
    imports,
    messages,
    notifications,
    senders,
    templates,
    webhooks,
)
