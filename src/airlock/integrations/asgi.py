"""ASGI: one airlock scope per HTTP request, for Starlette, FastAPI or any ASGI app.

:class:`AirlockMiddleware` is plain ASGI (it imports no framework), so it works
as ``app.add_middleware(AirlockMiddleware)`` in Starlette/FastAPI and around any
ASGI callable. For every HTTP request it opens a scope, runs the app in it, and
decides from what the app actually sent:

* the response completes with its final body message (``more_body`` false),
  ``http.response.pathsend``, a final ``http.response.zerocopysend``, or its
  final trailers when it announced some. At that moment the request scope is
  decided: flushed if the status is below 400 (or ``should_flush(scope,
  status)`` says so), discarded otherwise;
* it is discarded when the app raised before completing the response, when
  the response was produced while an exception was being handled (an
  exception handler turned a raising view into a response: see
  docs/integrations/raised-views.md), and when the client disconnected first;
* work the app does after the response completed (Starlette/FastAPI
  background tasks) runs in a scope of its own, flushed when the app returns
  normally and discarded if it raises: a failing background task never
  discards the view's effects.

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
    :meth:`flush` behaves like the base :class:`~airlock.Scope`.
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
        "asgi_scope", "background", "completed", "disconnected", "exited", "failure",
        "marker", "middleware", "origin", "raised", "scope", "status", "trailers",
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
        self.exited = False  # the request scope was exited, its decision still to make
        self.failure: Exception | None = None  # raised while deciding at completion; re-raised at the end
        self.marker = _IN_REQUEST.set(None)

    def _in_own_context(self) -> bool:
        # A ContextVar token resets only in the context that made it.
        try:
            _IN_REQUEST.reset(self.marker)
        except (ValueError, RuntimeError):
            return False
        self.marker = _IN_REQUEST.set(None)
        return True

    async def switch_to_background(self) -> bool:
        """Exit the request scope and enter the one for the work after the response.

        Only from the middleware's own context (the one the app's code after
        the response runs in) with the request scope innermost; otherwise (a
        ``send`` from a task the app started, a scope the app left open) the
        request is decided as a whole when the app returns.
        """
        if self.background is not None or not self._in_own_context():
            return False
        if airlock.get_current_scope() is not self.scope:
            return False
        self.scope.exit()
        self.exited = True
        self.background = self.middleware._new_scope(f"{self.origin} (background)")
        await self.background.aenter()  # never suspends: safe in a cancelled task
        return True

    def flushes(self) -> bool:
        """The middleware's rule for the request's own effects."""
        if not self.completed or self.disconnected or self.raised or self.status is None:
            return False
        should_flush = self.middleware.should_flush
        if should_flush is None:
            return self.status < 400
        return bool(should_flush(self.asgi_scope, self.status))

    async def decide(self) -> None:
        """Flush or discard the (exited) request scope by the response."""
        self.exited = False
        scope = self.scope
        try:
            flush = self.flushes() and scope.should_flush(None)
        except BaseException:
            scope.discard()  # a rule raised: nothing may escape
            raise
        if flush:
            await scope.aflush()
        else:
            scope.discard()

    async def end(self, error: BaseException | None) -> None:
        """The app returned (``error`` is None) or raised."""
        if self.exited:
            await self.decide()  # switched in a cancelled task: decided now, by the response alone
        if self.background is not None:
            await self.background.aend(error)
            return
        if self.completed and error is not None:
            # The app failed after the response completed, without a scope of
            # its own for that work: the view's effects are still decided by
            # the response, never by what failed after it.
            error = None
        try:
            flush = error is None and self.flushes()
        except BaseException:
            await self.scope.aend(None, flush=False)
            raise
        await self.scope.aend(error, flush=flush)


class AirlockMiddleware:
    """Open one airlock scope per HTTP request of the wrapped ASGI app.

    ``should_flush(asgi_scope, status) -> bool`` replaces the default "status
    < 400" rule; it is only asked when the response completed and the view did
    not raise. Other keyword arguments go to :func:`airlock.scope` for every
    request (``policy=``, ``executor=``, ``_cls=``). Without ``_cls`` the
    request scope is an :class:`ASGIScope`, unless ``airlock.configure
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
                    # give the work after the response its own scope here.
                    await request.switch_to_background()
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
                if await request.switch_to_background():
                    try:
                        await request.decide()  # the view's effects, right after the response
                    except Exception as exc:  # re-raised once the app has returned
                        request.failure = exc

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
        if request.failure is not None:
            raise request.failure
