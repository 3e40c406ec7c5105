"""Middleware used to place a transaction around airlock's, or inside it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse

from airlock import Scope
from airlock.integrations.django import AirlockMiddleware

from .effects import note_thread


class TransactionMiddleware:
    """Wraps the rest of the chain in atomic(); rolls back on >= 500 or X-Rollback."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        with transaction.atomic():
            response = self.get_response(request)
            if response.status_code >= 500 or request.headers.get("X-Rollback"):
                transaction.set_rollback(True)
        return response


class ThreadRecordingAirlockMiddleware(AirlockMiddleware):
    """Notes the thread in which the request scope is made."""

    def make_scope(self, request: HttpRequest) -> Scope:
        note_thread("middleware")
        return super().make_scope(request)


class HandledErrorMiddleware:
    """Turns any view error into a 200 through ``process_exception`` (an error page that says 200)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse:
        return HttpResponse("handled", status=200)
