"""``AirlockMiddleware``: one airlock scope per Django request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.apps import apps
from django.http import HttpRequest, HttpResponseBase

import airlock
from airlock import Scope

from .scope import DjangoScope

__all__ = ["AirlockMiddleware"]

_APP = "airlock.integrations.django"


class AirlockMiddleware:
    """Run each request in its own scope, on ``request.airlock_scope``.

    The scope flushes when :meth:`should_flush` says so (by default: the
    response status is below 400) and is discarded otherwise, or when the
    rest of the chain raises (the exception propagates unchanged). The scope
    is a :class:`DjangoScope` (or the ``AIRLOCK['SCOPE']`` class when the app
    is installed), so the effects still wait for any transaction that is open
    around this middleware.

    Both sync and async capable: under ASGI with async views Django calls it
    as a coroutine and airlock adds no thread hop; under WSGI it is plain sync.
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
        # With the app installed, airlock.scope() builds the configured class
        # with the configured kwargs; without it, requests still get a
        # transaction-aware scope rather than the core's plain one.
        cls = None if apps.is_installed(_APP) else DjangoScope
        return airlock.scope(_cls=cls, origin=f"{request.method} {request.path}")

    def __call__(self, request: HttpRequest) -> Any:
        if self._is_async:
            return self.__acall__(request)
        scope = self.make_scope(request)
        request.airlock_scope = scope
        scope.enter()
        try:
            response = self.get_response(request)
        except BaseException:
            scope.exit()
            scope.discard()
            raise
        scope.exit()
        if self.should_flush(request, response):
            scope.flush()
        else:
            scope.discard()
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        scope = self.make_scope(request)
        request.airlock_scope = scope
        await scope.aenter()
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        try:
            response = await get_response(request)
        except BaseException:
            scope.exit()
            scope.discard()
            raise
        scope.exit()
        if self.should_flush(request, response):
            await scope.aflush()
        else:
            scope.discard()
        return response
