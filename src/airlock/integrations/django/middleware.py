"""``AirlockMiddleware``: one airlock scope per Django request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.apps import apps
from django.http import HttpRequest, HttpResponseBase

from airlock import Scope
from airlock._scope import build_scope

from .scope import DjangoScope

__all__ = ["AirlockMiddleware"]

_APP = "airlock.integrations.django"


def _noop() -> None:
    pass


class AirlockMiddleware:
    """Run each request in its own scope, on ``request.airlock_scope``.

    The scope flushes when [`should_flush()`][airlock.integrations.django.AirlockMiddleware.should_flush] says so (by default: the
    response status is below 400) and is discarded otherwise, when the rest of
    the chain raises (the exception propagates unchanged), and when the view
    raised, even if a middleware's ``process_exception`` turned that into a
    successful response. The scope is a [`DjangoScope`][airlock.integrations.django.DjangoScope] (or the
    ``AIRLOCK['SCOPE']`` class when the app is installed), so the effects still
    wait for any transaction that is open around this middleware.

    Both sync and async capable: under ASGI with async views Django calls it
    as a coroutine and airlock adds no thread hop of its own; under WSGI it is
    plain sync. When the client disconnects while a sync view runs (ASGI),
    the scope stays open until the view has finished, then dispatches only
    the intents made inside a transaction (after that transaction commits)
    and discards the rest.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def should_flush(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        """Whether the request's effects escape. Default: ``status_code < 400``."""
        return bool(response.status_code < 400)

    def make_scope(self, request: HttpRequest) -> Scope:
        """The scope for ``request`` (override to pick a policy per request)."""
        # With the app installed, the configured class with the configured
        # kwargs, built with keyword arguments only; without it, requests
        # still get a transaction-aware scope rather than the core's plain one.
        cls = None if apps.is_installed(_APP) else DjangoScope
        return build_scope(cls, origin=f"{request.method} {request.path}")

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """Note that the view raised: its scope is discarded whatever response follows."""
        request._airlock_view_raised = exception

    def _flushes(self, request: HttpRequest, response: HttpResponseBase) -> tuple[BaseException | None, bool]:
        raised: BaseException | None = getattr(request, "_airlock_view_raised", None)
        return raised, raised is None and self.should_flush(request, response)

    def __call__(self, request: HttpRequest) -> Any:
        if self._is_async:
            return self.__acall__(request)
        scope = self.make_scope(request)
        request.airlock_scope = scope
        scope.enter()
        try:
            response = self.get_response(request)
        except BaseException as exc:
            scope.end(exc, flush=False)
            raise
        raised, flush = self._flushes(request, response)
        scope.end(raised, flush=flush)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        scope = self.make_scope(request)
        request.airlock_scope = scope
        await scope.aenter()
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        try:
            response = await get_response(request)
        except asyncio.CancelledError as exc:
            await self._after_disconnect(scope, exc)
            raise
        except BaseException as exc:
            scope.end(exc, flush=False)
            raise
        raised, flush = self._flushes(request, response)
        await scope.aend(raised, flush=flush)
        return response

    async def _after_disconnect(self, scope: Scope, exc: BaseException) -> None:
        """The client went away (Django cancelled the request) while the chain ran.

        A sync view is not stopped by that: it runs on in its thread and may
        still commit. Wait for it (a no-op queued behind it on the same
        thread), then let the intents made inside a transaction follow their
        data (dispatched after it commits, dropped if it rolls back); discard
        the rest.
        """
        try:
            await sync_to_async(_noop, thread_sensitive=True)()
        except BaseException:
            scope.end(exc, flush=False)
            raise
        if isinstance(scope, DjangoScope):
            scope.dispatch_transaction_bound_only()
            await scope.aend(None)
        else:
            scope.end(exc, flush=False)
