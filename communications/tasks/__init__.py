"""Job kinds of the communications app, one module per area."""

from communications.tasks import (  # noqa: F401
    campaigns,
    contacts,
    imports,
    messages,
    notifications,
    templates,
    webhooks,
)
