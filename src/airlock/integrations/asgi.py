"""ASGI: one airlock scope per HTTP request, for Starlette, FastAPI or any ASGI app.

:class:`AirlockMiddleware` is plain ASGI (it imports no framework), so it works
as ``app.add_middleware(AirlockMiddleware)`` in Starlette/FastAPI and around any
ASGI callable. For every HTTP request it opens a scope, runs the app in it, and
decides from what the app actually sent:

* flush once the app has returned, if the final body chunk was sent
  (``more_body`` false) and the status is below 400 (or ``should_flush(scope,
  status)`` says so);
* discard on a status of 400 or more, when the app raised (the exception is
  re-raised), and when the client disconnected before the response completed.

Lifespan and websocket connections pass through untouched.

Sync tasks run in a worker thread (with a copy of the context), so a slow SMTP
call at flush never blocks the event loop; coroutine tasks are awaited on the
loop. Both keep FIFO order: each intent finishes before the next starts.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any

import airlock
from airlock import _config, _observe
from airlock._intent import Intent
from airlock._scope import Scope, _is_coroutine_callable

__all__ = ["ASGIScope", "AirlockMiddleware"]

ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]
ShouldFlush = Callable[[MutableMapping[str, Any], int], bool]


class ASGIScope(Scope):
    """A scope whose async flush keeps the event loop free.

    At ``await scope.aflush()``, intents whose task is a coroutine function
    (or whose executor is one) are awaited on the loop; every other intent's
    executor call runs in the loop's default thread pool with a copy of the
    current context. One intent at a time, in FIFO order; every intent is
    attempted and failures are raised together as :class:`airlock.DispatchError`.
    A synchronous :meth:`flush` behaves like the base :class:`~airlock.Scope`.
    """

    __slots__ = ()

    async def _adispatch_all(self, intents: list[Intent]) -> None:
        executor = self._executor
        executor_is_async = inspect.iscoroutinefunction(executor) or inspect.iscoroutinefunction(
            getattr(type(executor), "__call__", None)
        )
        loop = asyncio.get_running_loop()
        failures: list[tuple[Intent, Exception]] = []
        listening = _observe.listening()
        started = perf_counter() if listening else 0.0
        for intent in intents:
            try:
                if executor_is_async or _is_coroutine_callable(intent._task):
                    result = executor(intent)
                else:
                    context = contextvars.copy_context()
                    result = await loop.run_in_executor(
                        None, functools.partial(context.run, executor, intent)
                    )
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception as exc:
                failures.append((intent, exc))
        if listening or failures:
            # Reports the batch to observers, logs each failure, raises DispatchError.
            self._finish_dispatch(intents, failures, started if listening else None)


class AirlockMiddleware:
    """Open one airlock scope per HTTP request of the wrapped ASGI app.

    ``should_flush(asgi_scope, status) -> bool`` replaces the default "status
    < 400" rule; it is only asked when the response completed without an
    exception. Other keyword arguments go to :func:`airlock.scope` for every
    request (``policy=``, ``executor=``, ``_cls=``). Without ``_cls`` the
    request scope is an :class:`ASGIScope`, unless ``airlock.configure
    (scope_cls=...)`` chose another class, which then wins.

    Handlers find the scope at ``scope["airlock"]`` of the ASGI scope
    (``request.scope["airlock"]`` in Starlette) and at
    ``scope["state"]["airlock"]`` (``request.state.airlock``). Its ``origin``
    is ``"METHOD /path"``.
    """

    def __init__(self, app: ASGIApp, *, should_flush: ShouldFlush | None = None, **scope_kwargs: Any) -> None:
        if not callable(app):
            raise TypeError(f"AirlockMiddleware(app) needs an ASGI application (a callable), got {app!r}")
        if should_flush is not None and not callable(should_flush):
            raise TypeError(
                f"AirlockMiddleware(should_flush=...) needs a callable (asgi_scope, status) -> bool, "
                f"got {should_flush!r}"
            )
        self.app = app
        self.should_flush = should_flush
        self.scope_kwargs = scope_kwargs
        # Build one scope now so that bad scope arguments fail where the
        # middleware is configured, not on the first request.
        self._new_scope("GET /")

    def _new_scope(self, origin: str) -> Scope:
        kwargs = dict(self.scope_kwargs)
        policy = kwargs.pop("policy", None)
        cls = kwargs.pop("_cls", None)
        if cls is None:
            configured = _config.current().scope_cls
            cls = ASGIScope if configured is None or configured is Scope else configured
        kwargs.setdefault("origin", origin)
        return airlock.scope(policy, _cls=cls, **kwargs)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_scope = self._new_scope(f"{scope['method']} {scope['path']}")
        scope["airlock"] = request_scope
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["airlock"] = request_scope

        status: int | None = None
        completed = False
        disconnected = False

        async def receive_watching_disconnect() -> ASGIMessage:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect" and not completed:
                disconnected = True
            return message

        async def send_watching_response(message: ASGIMessage) -> None:
            nonlocal status, completed
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            await send(message)
            if kind == "http.response.body" and not message.get("more_body", False):
                completed = True

        await request_scope.aenter()
        try:
            await self.app(scope, receive_watching_disconnect, send_watching_response)
        except BaseException:
            # An exception (or a cancellation: some servers cancel the app when
            # the client goes away) means the request did not complete.
            request_scope.exit()
            request_scope.discard()
            raise
        request_scope.exit()
        try:
            flush = completed and not disconnected and status is not None and self._flushes(scope, status)
        except BaseException:
            request_scope.discard()  # should_flush raised: nothing may escape
            raise
        if flush:
            await request_scope.aflush()
        else:
            request_scope.discard()

    def _flushes(self, scope: MutableMapping[str, Any], status: int) -> bool:
        if self.should_flush is None:
            return status < 400
        return bool(self.should_flush(scope, status))
