"""Every API route under /api/v1/, gathered from the apps."""

from django.urls import include, path

urlpatterns = [
    path("", include("tenants.urls")),
    path("", include("jobs.urls")),
    path("", include("communications.urls")),
    path("", include("reports.urls")),
    path("", include("workflows.urls")),
    path("", include("alerts.urls")),
]
