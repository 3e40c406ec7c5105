"""Flask: one airlock scope per request.

``Airlock(app)`` (or ``Airlock()`` then ``init_app(app)`` in an app factory)
hooks into Flask's request cycle:

* ``before_request`` opens the scope and puts it on ``flask.g.airlock_scope``;
* ``after_request`` notes the response the app produced;
* ``teardown_request`` closes the scope: it flushes when the request ended
  without an exception and the response status is below 400 (or
  ``should_flush(response)`` says so), and discards otherwise;
* a view that raised discards even when an ``errorhandler`` turned the
  exception into a successful response (docs/integrations/raised-views.md).
  Flask routes every exception a view raises through
  ``app.handle_user_exception``; the extension wraps that method on the app
  it is initialised on (as Flask-RESTful does) to note that it happened.

The scope is synchronous (Flask requests are), so tasks run in the request's
thread when it flushes. Async views (``flask[async]``) run in an event loop of
their own; the context is carried into it, so their enqueues land in the
request's scope. A *coroutine* task enqueued there is a
[`UsageError`][airlock.UsageError] at the enqueue line, because a synchronous scope
could never await it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ._extras import requires

with requires("flask"):
    from flask import Flask, Response, g, request

import airlock
from airlock._scope import build_scope

__all__ = ["Airlock"]

ShouldFlush = Callable[[Response], bool]

_SCOPE = "airlock_scope"
_RESPONSE = "_airlock_response"
_RAISED = "_airlock_view_raised"


class Airlock:
    """Flask extension: every request runs in its own airlock scope.

    ``should_flush(response) -> bool`` replaces the default "status < 400"
    rule; it is asked only when the request ended without an exception and
    the view did not raise.
    Other keyword arguments go to [`airlock.scope()`][airlock.scope] for every request
    (``policy=``, ``executor=``, ``_cls=``). Handlers find the scope at
    ``flask.g.airlock_scope``; its ``origin`` is ``"METHOD /path"``.

    Initialise it before other extensions whose ``before_request`` hooks
    enqueue: Flask runs those hooks in registration order, and an enqueue
    before the scope opens raises [`NoScopeError`][airlock.NoScopeError].
    """

    def __init__(
        self, app: Flask | None = None, *, should_flush: ShouldFlush | None = None, **scope_kwargs: Any
    ) -> None:
        if should_flush is not None and not callable(should_flush):
            raise TypeError(
                f"Airlock(should_flush=...) needs a callable (response) -> bool, got {should_flush!r}"
            )
        self.should_flush = should_flush
        self.scope_kwargs = scope_kwargs
        # Build one scope now so that bad scope arguments fail here, not on
        # the first request.
        self._new_scope("GET /")
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the request hooks on ``app`` (the app-factory spelling)."""
        if not isinstance(app, Flask):
            raise TypeError(f"Airlock.init_app() needs a flask.Flask application, got {app!r}")
        if "airlock" in app.extensions:
            raise RuntimeError(f"airlock is already initialised on {app!r}; one Airlock per app")
        app.extensions["airlock"] = self
        app.before_request(self._open)
        app.after_request(self._note_response)
        app.teardown_request(self._close)
        handle_user_exception = app.handle_user_exception

        @functools.wraps(handle_user_exception)
        def note_raised_then_handle(e: Exception) -> Any:
            g.setdefault(_RAISED, True)
            return handle_user_exception(e)

        app.handle_user_exception = note_raised_then_handle  # type: ignore[method-assign]

    def _new_scope(self, origin: str) -> airlock.Scope:
        kwargs = dict(self.scope_kwargs)
        policy = kwargs.pop("policy", None)
        cls = kwargs.pop("_cls", None)
        return build_scope(cls, policy, origin=kwargs.pop("origin", origin), **kwargs)

    def _open(self) -> None:
        scope = self._new_scope(f"{request.method} {request.path}")
        scope.enter()
        setattr(g, _SCOPE, scope)

    def _note_response(self, response: Response) -> Response:
        setattr(g, _RESPONSE, response)
        return response

    def _close(self, error: BaseException | None) -> None:
        # The scope stays on ``g`` (flushed or discarded) for teardown hooks
        # that run after this one.
        scope: airlock.Scope | None = g.get(_SCOPE)
        response: Response | None = g.pop(_RESPONSE, None)
        raised = g.pop(_RAISED, False)
        if scope is None or not scope.is_active:
            return  # an earlier before_request hook answered before ours ran
        try:
            flush = error is None and not raised and response is not None and self._flushes(response)
        except BaseException:
            scope.end(flush=False)  # should_flush raised: nothing may escape
            raise
        scope.end(error, flush=flush)

    def _flushes(self, response: Response) -> bool:
        if self.should_flush is None:
            return response.status_code < 400
        return bool(self.should_flush(response))
