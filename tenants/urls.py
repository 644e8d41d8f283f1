"""API routes of the tenants app."""

from django.urls import URLPattern, path

from tenants.api import MeView, TenantDispatchView, TenantPauseView, TenantResumeView

urlpatterns: list[URLPattern] = [
    path("me/", MeView.as_view(), name="me"),
    path("tenants/<slug:slug>/dispatch/", TenantDispatchView.as_view(), name="tenant-dispatch"),
    path("tenants/<slug:slug>/pause/", TenantPauseView.as_view(), name="tenant-pause"),
    path("tenants/<slug:slug>/resume/", TenantResumeView.as_view(), name="tenant-resume"),
]
