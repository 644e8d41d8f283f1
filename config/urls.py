"""URLs: the admin, the API under /api/v1/, its schema and docs."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from communications.accounts import urlpatterns as password_reset_urls
from jobs.admin.login import throttled_login
from jobs.api.metrics import metrics

admin.site.site_header = "Conveyor"
admin.site.site_title = "Conveyor"
admin.site.index_title = "Operations"

urlpatterns = [
    path("admin/queues/", include("jobs.admin.dashboard")),  # before admin/: its catch-all
    # Django's password reset (the admin's "Forgotten your password?"), before admin/ too.
    *password_reset_urls,
    path("admin/login/", throttled_login, name="admin-login"),  # before admin/: the same page
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/v1/", include("config.api_urls")),
    path("metrics", metrics, name="metrics"),
]
