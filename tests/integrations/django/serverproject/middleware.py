"""The middlewares the server tests place around ``AirlockMiddleware``."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.http import HttpRequest, HttpResponse

from .serverapp.views import HandledError


class OuterAtomicMiddleware:
    """Sync only: the rest of the chain runs in ``atomic(using=X-Atomic-Using)``.

    ``X-Rollback: 1`` rolls the block back after the response is made;
    ``X-No-Atomic: 1`` skips the block.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.headers.get("X-No-Atomic"):
            return self.get_response(request)
        with transaction.atomic(using=request.headers.get("X-Atomic-Using", "default")):
            response = self.get_response(request)
            if request.headers.get("X-Rollback"):
                transaction.set_rollback(True, using=request.headers.get("X-Atomic-Using", "default"))
        return response


class HandledErrorMiddleware:
    """Sync only: ``process_exception`` turns the view's :class:`HandledError` into a 200."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, HandledError):
            return HttpResponse("handled", status=200)
        return None
