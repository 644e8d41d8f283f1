"""Contacts, message templates, messages, campaigns, notifications, webhooks and imports.

Each area keeps its models in its own module; this package gathers them for Django.
"""

from communications.models.contacts import *  # noqa: F403
from communications.models.imports import *  # noqa: F403
from communications.models.messaging import *  # noqa: F403
from communications.models.notifications import *  # noqa: F403
from communications.models.senders import *  # noqa: F403
from communications.models.templates import *  # noqa: F403
from communications.models.webhooks import *  # noqa: F403
