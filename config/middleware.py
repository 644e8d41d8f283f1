"""Middleware at the API's edge: every error answer of /api/ is JSON, in every mode.

`ApiErrorsAsJson` refuses a query string holding NUL characters (PostgreSQL cannot compare
text with them) with 400, answers an unknown /api/ URL with a JSON 404 (never Django's debug
page listing the URLconf) and an unhandled error with a JSON 500 (logged with its traceback),
so clients always read `{"detail": "..."}`.
"""

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("django.request")

API_PREFIX = "/api/"


class ApiErrorsAsJson:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        if "\x00" in request.path or any(
            "\x00" in key or "\x00" in value
            for key, values in request.GET.lists()
            for value in values
        ):
            return JsonResponse(
                {"detail": "The URL may not contain NUL (%00) characters."}, status=400
            )
        response = self.get_response(request)
        if response.status_code == 404 and not _is_json(response):
            return JsonResponse({"detail": "Not found."}, status=404)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        logger.error(
            "Internal Server Error: %s",
            request.path,
            exc_info=exception,
            extra={"request": request},
        )
        return JsonResponse({"detail": "A server error occurred."}, status=500)


def _is_json(response: HttpResponse) -> bool:
    return "json" in response.get("Content-Type", "")
