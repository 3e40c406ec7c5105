"""ASGI: one airlock scope per HTTP request, for Starlette, FastAPI or any ASGI app.

[`AirlockMiddleware`][airlock.integrations.asgi.AirlockMiddleware] is plain ASGI (it imports no framework), so it works
as ``app.add_middleware(AirlockMiddleware)`` in Starlette/FastAPI and around any
ASGI callable. For every HTTP request it opens a scope, runs the app in it, and
decides from what the app actually sent:

* the response completes with its final body message (``more_body`` false),
  ``http.response.pathsend``, a final ``http.response.zerocopysend``, or its
  final trailers when it announced some. Effects enqueued before that are
  decided by the response: flushed if the status is below 400 (or
  ``should_flush(scope, status)`` says so), discarded otherwise;
* they are discarded when the app raised before completing the response, when
  the response was produced while an exception was being handled (an
  exception handler turned a raising view into a response: see
  docs/integrations/raised-views.md), and when the client disconnected first;
* work the app does after the response completed (Starlette/FastAPI
  background tasks) runs in a scope of its own, nested in the request's but
  dispatching its own intents: flushed when the app returns normally,
  discarded if it raises. A failing background task never discards the
  view's effects.

Both are dispatched once the app has returned, the view's first.

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
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import airlock
from airlock import _config
from airlock._intent import Intent
from airlock._scope import Scope, _is_coroutine_callable, build_scope

__all__ = ["ASGIScope", "AirlockMiddleware"]

ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]
ShouldFlush = Callable[[MutableMapping[str, Any], int], bool]

# Set by the middleware around the app: resetting its token succeeds only in the
# middleware's own context, which tells whether a send() runs there or in a task
# the app started (whose context is a copy).
_IN_REQUEST: contextvars.ContextVar[None] = contextvars.ContextVar("airlock_asgi_request")


class ASGIScope(Scope):
    """A scope whose async flush keeps the event loop free.

    At ``await scope.aflush()``, intents whose task is a coroutine function
    (or whose executor is one) are awaited on the loop; every other intent's
    executor call runs in the loop's default thread pool with a copy of the
    current context. One intent at a time, in FIFO order (the core's dispatch
    loop; this class only changes how ONE intent runs). A synchronous
    [`flush()`][airlock.Scope.flush] behaves like the base [`Scope`][airlock.Scope].
    """

    __slots__ = ()

    async def _adispatch_one(self, intent: Intent) -> None:
        executor = self._executor
        if _is_coroutine_callable(executor) or _is_coroutine_callable(intent._task):
            result = executor(intent)
        else:
            context = contextvars.copy_context()
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(None, functools.partial(context.run, executor, intent))
        if result is not None and inspect.isawaitable(result):
            await result


def _completes(message: ASGIMessage, trailers: bool) -> bool:
    """Whether ``message`` is the last one of the response."""
    kind: str = message["type"]
    if trailers:
        return kind == "http.response.trailers" and not message.get("more_trailers", False)
    if kind == "http.response.body" or kind == "http.response.zerocopysend":
        return not message.get("more_body", False)
    return bool(kind == "http.response.pathsend")


def _handling_exception() -> bool:
    # True while an ``except`` block up the call stack is handling an exception:
    # the response is being produced by an exception handler.
    return sys.exc_info()[1] is not None


class _Request:
    """One HTTP request: what the app sent, and the scopes deciding its effects."""

    __slots__ = (
        "asgi_scope", "background", "completed", "disconnected", "marker",
        "middleware", "origin", "raised", "scope", "status", "trailers",
    )  # fmt: skip

    def __init__(
        self, middleware: AirlockMiddleware, asgi_scope: MutableMapping[str, Any], origin: str
    ) -> None:
        self.middleware = middleware
        self.asgi_scope = asgi_scope
        self.origin = origin
        self.scope = middleware._new_scope(origin)
        self.background: Scope | None = None  # the scope of the work after the response
        self.status: int | None = None
        self.trailers = False
        self.completed = False
        self.disconnected = False
        self.raised = False  # the response was produced while an exception was being handled
        self.marker = _IN_REQUEST.set(None)

    def _in_own_context(self) -> bool:
        # A ContextVar token resets only in the context that made it.
        try:
            _IN_REQUEST.reset(self.marker)
        except (ValueError, RuntimeError):
            return False
        self.marker = _IN_REQUEST.set(None)
        return True

    async def open_background(self) -> None:
        """Enter the scope for the work after the response, nested in the request's.

        It dispatches its own intents (``dispatches_own_intents``): its
        outcome, not the response's, decides them, and the request scope's
        policy still judges them. Only from the middleware's own context (the
        one the app's code after the response runs in) with the request scope
        innermost; otherwise (a ``send`` from a task the app started, a scope
        the app left open) the work after the response joins the request's
        scope. The request scope stays active either way, so code in any
        context that still sees it can enqueue until the app returns.
        """
        if self.background is not None or not self._in_own_context():
            return
        if airlock.get_current_scope() is not self.scope:
            return
        background = self.middleware._new_scope(f"{self.origin} (background)")
        # An instance setting over the class default, like the core's own per-scope state.
        background.dispatches_own_intents = True  # type: ignore[misc]
        await background.aenter()  # never suspends: safe in a task being cancelled
        self.background = background

    def flushes(self) -> bool:
        """The middleware's rule for the request's own effects."""
        if not self.completed or self.disconnected or self.raised or self.status is None:
            return False
        should_flush = self.middleware.should_flush
        if should_flush is None:
            return self.status < 400
        return bool(should_flush(self.asgi_scope, self.status))

    async def end(self, error: BaseException | None) -> None:
        """The app returned (``error`` is None) or raised: decide both scopes.

        The background scope is innermost, so it exits first, but it is decided
        after the request scope: the view's effects go out first (FIFO across
        the request), then those of the work after the response.
        """
        background = self.background
        if background is not None:
            background.exit()
        try:
            # Once the response completed, only the response decides the view's effects.
            request_error = None if self.completed else error
            try:
                flush = request_error is None and self.flushes()
            except BaseException:
                await self.scope.aend(None, flush=False)  # should_flush raised: nothing may escape
                raise
            await self.scope.aend(request_error, flush=flush)
        finally:
            if background is not None:
                # The decision half of Scope.aend(): after the response, the error is its own.
                if background._decide(error, True):
                    await background.aflush()
                else:
                    background.discard()


class AirlockMiddleware:
    """Open one airlock scope per HTTP request of the wrapped ASGI app.

    ``should_flush(asgi_scope, status) -> bool`` replaces the default "status
    < 400" rule; it is only asked when the response completed and the view did
    not raise. Other keyword arguments go to [`airlock.scope()`][airlock.scope] for every
    request (``policy=``, ``executor=``, ``_cls=``). Without ``_cls`` the
    request scope is an [`ASGIScope`][airlock.integrations.asgi.ASGIScope], unless ``airlock.configure
    (scope_cls=...)`` chose another class, which then wins.

    Handlers find the scope at ``scope["airlock"]`` of the ASGI scope
    (``request.scope["airlock"]`` in Starlette) and at
    ``scope["state"]["airlock"]`` (``request.state.airlock``). Its ``origin``
    is ``"METHOD /path"``; the scope of the work after the response has
    ``"METHOD /path (background)"``.
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
        return build_scope(cls, policy, origin=kwargs.pop("origin", origin), **kwargs)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request = _Request(self, scope, f"{scope['method']} {scope['path']}")
        scope["airlock"] = request.scope
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["airlock"] = request.scope

        async def receive_watching_disconnect() -> ASGIMessage:
            try:
                message = await receive()
            finally:
                if request.completed and request.background is None:
                    # The response completed in a task the app started (Starlette
                    # streams that way under ASGI < 2.4) and this task is back:
                    # open the scope for the work after the response here.
                    await request.open_background()
            if message["type"] == "http.disconnect" and not request.completed:
                request.disconnected = True
            return message

        async def send_watching_response(message: ASGIMessage) -> None:
            if message["type"] == "http.response.start":
                request.status = message["status"]
                request.trailers = bool(message.get("trailers", False))
                if _handling_exception():
                    request.raised = True
            await send(message)
            if not request.completed and _completes(message, request.trailers):
                request.completed = True
                if _handling_exception():
                    request.raised = True
                await request.open_background()

        await request.scope.aenter()
        try:
            await self.app(scope, receive_watching_disconnect, send_watching_response)
        except BaseException as exc:
            # Before completion, an exception (or a cancellation: some servers
            # cancel the app when the client goes away) fails the request;
            # after it, it fails only the work after the response.
            await request.end(exc)
            raise
        await request.end(None)
