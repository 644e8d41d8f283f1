"""API routes of the tenants app."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
