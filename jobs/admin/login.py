"""The admin's sign-in page, with failed passwords limited per client and per account."""

import math

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from jobs.api.throttles import clear_failed_logins, failed_login_wait, record_failed_login


def throttled_login(request: HttpRequest) -> HttpResponse:
    """Django's admin login; past the failed sign-in limits, 429 with Retry-After instead."""
    if request.method != "POST":
        return admin.site.login(request)
    account = "user:" + request.POST.get("username", "").strip().lower()[:150]
    wait = failed_login_wait(request, account)
    if wait:
        seconds = math.ceil(wait)
        return HttpResponse(
            f"Too many failed sign-ins from this client: try again in {seconds} s.\n",
            status=429,
            headers={"Retry-After": str(seconds)},
            content_type="text/plain",
        )
    response = admin.site.login(request)
    if request.user.is_authenticated:
        clear_failed_logins(request, account)
    else:
        record_failed_login(request, account)
    return response
