"""API routes of the tenants app."""

from django.urls import URLPattern, path

from tenants.api import (
    MemberDetailView,
    MemberListView,
    MeView,
    TenantDispatchView,
    TenantPauseView,
    TenantResumeView,
    TenantSettingsView,
)

urlpatterns: list[URLPattern] = [
    path("me/", MeView.as_view(), name="me"),
    path("tenant/", TenantSettingsView.as_view(), name="tenant-settings"),
    path("members/", MemberListView.as_view(), name="member-list"),
    path("members/<int:pk>/", MemberDetailView.as_view(), name="member-detail"),
    path("tenants/<slug:slug>/dispatch/", TenantDispatchView.as_view(), name="tenant-dispatch"),
    path("tenants/<slug:slug>/pause/", TenantPauseView.as_view(), name="tenant-pause"),
    path("tenants/<slug:slug>/resume/", TenantResumeView.as_view(), name="tenant-resume"),
]
