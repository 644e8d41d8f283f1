"""API routes of the reports app, under /api/v1/."""

from django.urls import URLPattern, URLResolver

from reports.api import urlpatterns as api_urlpatterns

urlpatterns: list[URLPattern | URLResolver] = [*api_urlpatterns]
