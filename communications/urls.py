"""API routes of the communications app, under /api/v1/."""

from django.urls import URLPattern, URLResolver

from communications.api import (
    campaigns,
    contacts,
    imports,
    messages,
    notifications,
    senders,
    templates,
    webhooks,
)

urlpatterns: list[URLPattern | URLResolver] = [
    # Import routes (contacts/imports/…) come before contacts/<id>/.
    *imports.urlpatterns,
    *contacts.urlpatterns,
    *templates.urlpatterns,
    *messages.urlpatterns,
    *campaigns.urlpatterns,
    *notifications.urlpatterns,
    *webhooks.urlpatterns,
    *senders.urlpatterns,
]
