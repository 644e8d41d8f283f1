"""API views: queues."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
