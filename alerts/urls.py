"""API routes of the alerts app, under /api/v1/."""

from alerts.api import urlpatterns

__all__ = ["urlpatterns"]
