"""API routes of the tenants app."""

from django.urls import URLPattern, path

from tenants.api import MeView

urlpatterns: list[URLPattern] = [
    path("me/", MeView.as_view(), name="me"),
]
