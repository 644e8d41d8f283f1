"""API routes of the workflows app, under /api/v1/."""

from django.urls import URLPattern

from workflows.api import urlpatterns as api_urlpatterns

urlpatterns: list[URLPattern] = [*api_urlpatterns]
