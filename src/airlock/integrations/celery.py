"""Celery helpers: migrate ``.delay()`` call sites to airlock, one step at a time.

* [`LegacyTaskShim`][airlock.integrations.celery.LegacyTaskShim] - a task base class: ``.delay()``/``.apply_async()``
  on its tasks warn and become ``airlock.enqueue`` (options become dispatch
  options). Outside a scope they raise [`airlock.NoScopeError`][airlock.NoScopeError].
* [`install_global_intercept()`][airlock.integrations.celery.install_global_intercept] - every task's ``.delay()``/``.apply_async()``
  (and every ``group``/``chain``/``chord``) is buffered inside a scope and
  passes through outside one (both warn), and, optionally, every task run gets
  its own scope.

A call buffered inside a scope returns the ``AsyncResult`` of the task id the
message will carry when the scope flushes. Dispatch itself goes through
[`airlock.integrations.executors.celery.celery_executor()`][airlock.integrations.executors.celery.celery_executor], which these
helpers never intercept again; neither are Celery's own sends (a retry, a
replacement, a chain's next step, a link callback).
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import warnings
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from ._extras import requires

with requires("celery"):
    import celery
    from celery import signals
    from celery.app.task import Task as _BaseTask
    from celery.canvas import _chain, _chord, group
    from celery.exceptions import Ignore
    from celery.utils import uuid

import airlock
from airlock._scope import build_scope

from .executors.celery import LIVE_OPTIONS, _bypass, bypass_intercept, intercept_bypassed

__all__ = ["LegacyTaskShim", "install_global_intercept", "uninstall_global_intercept"]

# Set while a ``.delay()`` call is forwarded to ``apply_async``, so that one
# call site warns once, at its own line.
_in_delay: ContextVar[bool] = ContextVar("airlock_celery_in_delay", default=False)
# Set by ``self.replace(sig)``: the run handed its work on (Celery then raises
# ``Ignore``), which is a success for the run's own intents.
_replaced: ContextVar[bool] = ContextVar("airlock_celery_replaced", default=False)

_OUTCOMES = {
    "buffered": "buffered in the active airlock scope",
    "sent": "sent to the broker right away, as no airlock scope is active",
    "refused": "refused, as no airlock scope is active",
}


# Frames in these files are skipped when a warning looks for the calling line:
# a signature's ``.delay()`` reaches the task's method through Celery's canvas.
_NOT_THE_CALLER = (os.path.dirname(celery.__file__) + os.sep, __file__)


def _warn(name: Any, method: str, outcome: str) -> None:
    """Warn at the first frame outside Celery and this module: the call site to migrate."""
    frame, level = sys._getframe(0), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_NOT_THE_CALLER):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        f"Direct call to {name}.{method}() ({_OUTCOMES[outcome]}); use airlock.enqueue(task, ...) instead",
        DeprecationWarning,
        stacklevel=level,
    )


def _sendable(options: dict[str, Any]) -> dict[str, Any]:
    # A producer or connection handed to apply_async is the caller's means of
    # sending now; it is released before the scope flushes. The executor's
    # apply_async acquires its own.
    for name in LIVE_OPTIONS & options.keys():
        del options[name]
    return options


def _buffer(task: Any, args: Any, kwargs: Any, options: dict[str, Any]) -> Any:
    """Enqueue the call in the active scope; return the result of the id it will be sent with."""
    options = _sendable(options)
    task_id = options.get("task_id") or uuid()
    options["task_id"] = task_id
    airlock.enqueue(task, *(args or ()), _dispatch_options=options, **(kwargs or {}))
    return task.AsyncResult(task_id)


def _collect_options(
    task_id: Any, producer: Any, link: Any, link_error: Any, shadow: Any, options: dict[str, Any]
) -> dict[str, Any]:
    # apply_async names a few options explicitly; put back the ones given.
    for name, value in (("task_id", task_id), ("producer", producer), ("link", link),
                        ("link_error", link_error), ("shadow", shadow)):  # fmt: skip
        if value is not None:
            options[name] = value
    return options


class _WithAppTask(type):
    """Metaclass of [`LegacyTaskShim`][airlock.integrations.celery.LegacyTaskShim]: keeps the app's own task class in the bases.

    ``@app.task(base=LegacyTaskShim)`` makes Celery build the task class on
    ``LegacyTaskShim`` alone, instead of on ``app.Task`` (the app's
    ``task_cls``: Django's ``DjangoTask`` with ``delay_on_commit`` under the
    Django fixup, or a project's own base). Celery passes the app in the
    class namespace; the app's task class is added after the shim, so the
    shim's ``delay``/``apply_async`` win and everything else the app's class
    offers stays.
    """

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> Any:
        app = namespace.get("app")
        if isinstance(app, celery.Celery):
            app_task = app.Task
            if not any(issubclass(base, app_task) for base in bases):
                bases = (*bases, app_task)
        return super().__new__(mcls, name, bases, namespace, **kwargs)


class LegacyTaskShim(_BaseTask, metaclass=_WithAppTask):  # type: ignore[misc]
    """Task base class routing ``.delay()``/``.apply_async()`` into ``airlock.enqueue``.

    ``@app.task(base=LegacyTaskShim)``: existing call sites keep working but
    warn (``DeprecationWarning`` at the caller's line) and are buffered in the
    active scope, so they escape only when the unit of work succeeds; the call
    returns the ``AsyncResult`` of the id the task will be sent with. Outside
    a scope they raise [`airlock.NoScopeError`][airlock.NoScopeError] (nothing is sent).

    A task built on it also inherits the app's own task class (``app.Task``:
    Django's ``DjangoTask`` with ``delay_on_commit``, or a project's base), so
    what that class offers stays available; ``delay_on_commit`` then calls the
    shim's ``delay`` when the transaction commits.
    """

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        if intercept_bypassed():
            return super().apply_async(args, kwargs)
        _warn(self.name, "delay", _shim_outcome())
        return _buffer(self, args, kwargs, {})

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: Any = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: Any = None,
        **options: Any,
    ) -> Any:
        if intercept_bypassed():
            return super().apply_async(args, kwargs, task_id, producer, link, link_error, shadow, **options)
        _warn(self.name, "apply_async", _shim_outcome())
        return _buffer(
            self, args, kwargs, _collect_options(task_id, producer, link, link_error, shadow, options)
        )

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        # Celery re-sends the task itself; that message must not be buffered
        # in the (about to be discarded) scope of the failing run.
        with bypass_intercept():
            return super().retry(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # The body's own calls are intercepted, even when airlock's dispatch
        # ran it eagerly (task_always_eager) inside its bypass.
        with bypass_intercept(False):
            return super().__call__(*args, **kwargs)


def _shim_outcome() -> str:
    return "buffered" if airlock.get_current_scope() is not None else "refused"


# -- Celery's tracer around a task body ---------------------------------------
# The tracer sends task_prerun before the body and task_postrun after
# everything, in the same context. Between the two, outside the body, it
# sends the run's link callbacks and the chain's next step: Celery's
# machinery, not the body's side effects, so they pass straight through
# (never buffered, never refused, no warning). The body itself (our
# ``__call__`` wrapper) turns interception back on.

_tracer_tokens: ContextVar[tuple[tuple[Token[bool], Token[Any]], ...]] = ContextVar(
    "airlock_celery_tracer_tokens", default=()
)
# The task the tracer is about to call: its ``__call__`` is the traced run.
_traced: ContextVar[Any] = ContextVar("airlock_celery_traced", default=None)


def _on_prerun(sender: Any = None, **_: Any) -> None:
    _tracer_tokens.set((*_tracer_tokens.get(), (_bypass.set(True), _traced.set(sender))))


def _on_postrun(**_: Any) -> None:
    tokens = _tracer_tokens.get()
    if not tokens:
        return
    _tracer_tokens.set(tokens[:-1])
    bypass_token, traced_token = tokens[-1]
    try:
        _bypass.reset(bypass_token)
        _traced.reset(traced_token)
    except ValueError:  # set in another context: leave interception on
        _bypass.set(False)
        _traced.set(None)


signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="airlock.celery.prerun")
signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid="airlock.celery.postrun")


# -- the global intercept ----------------------------------------------------

_lock = threading.Lock()
_installed: dict[tuple[type, str], Any] = {}  # (class, method name) -> Celery's own function
_state = {"wrap": False}


def _original(cls: type, name: str) -> Callable[..., Any]:
    return _installed[(cls, name)]  # type: ignore[no-any-return]


def _intercepted_delay(self: Any, *args: Any, **kwargs: Any) -> Any:
    if intercept_bypassed():
        return _original(_BaseTask, "delay")(self, *args, **kwargs)
    buffered = airlock.get_current_scope() is not None
    _warn(self.name, "delay", "buffered" if buffered else "sent")
    if buffered:
        return _buffer(self, args, kwargs, {})
    # Forward to apply_async (a subclass may override it) without a second warning.
    token = _in_delay.set(True)
    try:
        return self.apply_async(args, kwargs)
    finally:
        _in_delay.reset(token)


def _intercepted_apply_async(
    self: Any,
    args: Any = None,
    kwargs: Any = None,
    task_id: Any = None,
    producer: Any = None,
    link: Any = None,
    link_error: Any = None,
    shadow: Any = None,
    **options: Any,
) -> Any:
    original = _original(_BaseTask, "apply_async")
    if intercept_bypassed() or _in_delay.get():
        return original(self, args, kwargs, task_id, producer, link, link_error, shadow, **options)
    if airlock.get_current_scope() is None:
        _warn(self.name, "apply_async", "sent")
        return original(self, args, kwargs, task_id, producer, link, link_error, shadow, **options)
    _warn(self.name, "apply_async", "buffered")
    return _buffer(self, args, kwargs, _collect_options(task_id, producer, link, link_error, shadow, options))


def _intercepted_retry(self: Any, *args: Any, **kwargs: Any) -> Any:
    # The retry message is Celery's own business: send it, never buffer it in
    # the scope of the run that is failing (that scope is discarded).
    with bypass_intercept():
        return _original(_BaseTask, "retry")(self, *args, **kwargs)


def _intercepted_replace(self: Any, sig: Any) -> Any:
    # The replacement carries on the run's work (it inherits the task id):
    # Celery sends it now, and the run counts as a success for its intents.
    _replaced.set(True)
    with bypass_intercept():
        return _original(_BaseTask, "replace")(self, sig)


def _scoped_call(self: Any, *args: Any, **kwargs: Any) -> Any:
    # Celery's tracer calls ``task.__call__`` (not just ``run``) when it sees
    # it replaced from outside celery.app.task (``task_has_custom``), so the
    # scope wraps exactly the task body: links and chain steps run outside it.
    if _traced.get() is self:
        _traced.set(None)  # the traced run: whatever Celery put under us runs it
        below = _original(_BaseTask, "__call__")
    else:
        below = _plain_call  # a direct call, e.g. ``other_task(x)`` in a body
    with bypass_intercept(False):  # the body's own calls are intercepted, even run eagerly by airlock
        if not _state["wrap"]:
            return below(self, *args, **kwargs)
        replaced = _replaced.set(False)
        try:
            return _run_in_scope(self, below, args, kwargs)
        finally:
            _replaced.reset(replaced)


def _run_in_scope(task: Any, below: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    # The configured scope class, built by keyword only (a custom scope with
    # ``__init__(self, **kwargs)`` or without ``origin`` works).
    scope = build_scope(origin=task.name)
    scope.enter()
    try:
        result = below(task, *args, **kwargs)
    except BaseException as exc:
        handed_on = isinstance(exc, Ignore) and _replaced.get()
        scope.end(None if handed_on else exc)
        raise
    scope.end(None)
    return result


# What ``Task.__call__`` was when the intercept was installed.
_plain_call: Callable[..., Any] = _BaseTask.__call__


def _keep_wrapper_on_top(**_: Any) -> None:
    # A worker process replaces ``Task.__call__`` with its own
    # ``__protected_call__`` (celery.app.trace.setup_worker_optimizations):
    # for the traced run it calls ``run`` directly, so a wrapper installed
    # earlier would be skipped in every real worker; for any other call it
    # calls the ``__call__`` it replaced (ours). The worker announces it has
    # done so (celeryd_init in the main process, worker_process_init in each
    # pool process): put the wrapper back on top, running traced runs through
    # Celery's replacement and direct calls through the plain ``__call__``
    # (never back into Celery's replacement, which would call us again).
    with _lock:
        key = (_BaseTask, "__call__")
        current = _BaseTask.__dict__["__call__"]
        if key in _installed and current is not _scoped_call:
            _installed[key] = current
            _BaseTask.__call__ = _scoped_call


for _signal in (signals.celeryd_init, signals.worker_init, signals.worker_process_init):
    _signal.connect(_keep_wrapper_on_top, weak=False, dispatch_uid="airlock.celery.keep_wrapper_on_top")


def _canvas_apply_async(cls: type) -> Callable[..., Any]:
    original = cls.__dict__["apply_async"]
    signature = inspect.signature(original)

    def apply_async(self: Any, *args: Any, **options: Any) -> Any:
        if intercept_bypassed():
            return original(self, *args, **options)
        if airlock.get_current_scope() is None:
            _warn(self.name, "apply_async", "sent")
            return original(self, *args, **options)
        _warn(self.name, "apply_async", "buffered")
        bound = signature.bind(self, *args, **options).arguments
        bound.pop("self")
        options = {**bound.pop("options", {}), **{k: v for k, v in bound.items() if v is not None}}
        partial_args = options.pop("args", None) or ()
        partial_kwargs = options.pop("kwargs", None) or {}
        # The whole canvas is one intent: at flush the executor calls this
        # very apply_async (bypassed), which sends every member.
        airlock.enqueue(self, *partial_args, _dispatch_options=_sendable(options) or None, **partial_kwargs)
        return self.freeze()

    apply_async.__qualname__ = f"{cls.__name__}.apply_async"
    apply_async.__doc__ = original.__doc__
    return apply_async


_CANVAS = (group, _chain, _chord)


def install_global_intercept(app: celery.Celery | None = None, *, wrap_task_execution: bool = True) -> None:
    """Make every ``.delay()``/``.apply_async()`` airlock-aware (a migration aid).

    Inside an active scope the call is buffered as an intent (its options
    become dispatch options) and returns the ``AsyncResult`` of the task id the
    message will carry; ``group``/``chain``/``chord`` are buffered whole, as
    one intent. Outside a scope the call is sent as before. Both warn with a
    ``DeprecationWarning`` ("Direct call to <task>.delay()") at the calling
    line, so the warnings list the call sites left to migrate.

    ``app`` is accepted for compatibility with airlock-py 0.1, which
    documented it as unused: every Celery app's tasks are intercepted.

    With ``wrap_task_execution`` every task run gets its own scope (origin:
    the task name): its intents flush when the task returns, and are
    discarded when it raises or calls ``self.retry()``. Install before the
    worker starts (Celery builds its task tracers at start-up), e.g. in the
    module that creates the app.

    Installing twice raises ``RuntimeError``; [`uninstall_global_intercept()`][airlock.integrations.celery.uninstall_global_intercept]
    undoes it.
    """
    global _plain_call
    if app is not None and not isinstance(app, celery.Celery):
        raise TypeError(f"install_global_intercept(app) needs a Celery app or None, got {app!r}")
    with _lock:
        if _installed:
            raise RuntimeError(
                "install_global_intercept() was already called in this process; "
                "call uninstall_global_intercept() first to install it again"
            )
        replacements: list[tuple[type, str, Callable[..., Any]]] = [
            (_BaseTask, "delay", _intercepted_delay),
            (_BaseTask, "apply_async", _intercepted_apply_async),
            (_BaseTask, "retry", _intercepted_retry),
            (_BaseTask, "replace", _intercepted_replace),
            (_BaseTask, "__call__", _scoped_call),
        ]
        replacements += [(cls, "apply_async", _canvas_apply_async(cls)) for cls in _CANVAS]
        for cls, name, replacement in replacements:
            _installed[(cls, name)] = cls.__dict__[name]
            setattr(cls, name, replacement)
        _plain_call = _installed[(_BaseTask, "__call__")]
        _state["wrap"] = wrap_task_execution


def uninstall_global_intercept() -> None:
    """Restore Celery's own methods (for tests); a later install starts afresh."""
    with _lock:
        for (cls, name), original in _installed.items():
            setattr(cls, name, original)
        _installed.clear()
        _state["wrap"] = False
