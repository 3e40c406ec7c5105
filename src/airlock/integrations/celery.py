"""Celery helpers: migrate ``.delay()`` call sites to airlock, one step at a time.

* :class:`LegacyTaskShim` - a task base class: ``.delay()``/``.apply_async()``
  on its tasks warn and become ``airlock.enqueue`` (options become dispatch
  options). Outside a scope they raise :class:`airlock.NoScopeError`.
* :func:`install_global_intercept` - every task's ``.delay()``/``.apply_async()``
  is buffered inside a scope and passes through outside one (both warn), and,
  optionally, every task run gets its own scope.

Dispatch itself goes through :func:`airlock.integrations.executors.celery.celery_executor`,
which these helpers never intercept again.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from ._extras import requires

with requires("celery"):
    import celery
    from celery.app.task import Task as _BaseTask

import airlock

from .executors.celery import bypass_intercept, intercept_bypassed

__all__ = ["LegacyTaskShim", "install_global_intercept", "uninstall_global_intercept"]

# Set while a ``.delay()`` call is forwarded to ``apply_async``, so that one
# call site warns once, at its own line.
_in_delay: ContextVar[bool] = ContextVar("airlock_celery_in_delay", default=False)

_MIGRATE_HINT = "use airlock.enqueue(task, ...) instead"


_OUTCOMES = {
    "buffered": "buffered in the active airlock scope",
    "sent": "sent to the broker right away, as no airlock scope is active",
    "refused": "refused, as no airlock scope is active",
}


def _warn(task: Any, method: str, outcome: str, stacklevel: int) -> None:
    warnings.warn(
        f"{task.name}.{method}() is deprecated under airlock ({_OUTCOMES[outcome]}); {_MIGRATE_HINT}",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


def _shim_outcome() -> str:
    return "buffered" if airlock.get_current_scope() is not None else "refused"


def _buffer(task: Any, args: Any, kwargs: Any, options: dict[str, Any]) -> airlock.Intent:
    return airlock.enqueue(task, *(args or ()), _dispatch_options=options or None, **(kwargs or {}))


def _collect_options(
    task_id: Any, producer: Any, link: Any, link_error: Any, shadow: Any, options: dict[str, Any]
) -> dict[str, Any]:
    # apply_async names a few options explicitly; put back the ones given.
    for name, value in (("task_id", task_id), ("producer", producer), ("link", link),
                        ("link_error", link_error), ("shadow", shadow)):  # fmt: skip
        if value is not None:
            options[name] = value
    return options


class LegacyTaskShim(_BaseTask):  # type: ignore[misc]
    """Task base class routing ``.delay()``/``.apply_async()`` into ``airlock.enqueue``.

    ``@app.task(base=LegacyTaskShim)``: existing call sites keep working but
    warn (``DeprecationWarning`` at the caller's line) and are buffered in the
    active scope, so they escape only when the unit of work succeeds. Outside a
    scope they raise :class:`airlock.NoScopeError` (nothing is sent).
    """

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        if intercept_bypassed():
            return super().apply_async(args, kwargs)
        _warn(self, "delay", _shim_outcome(), stacklevel=2)
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
        _warn(self, "apply_async", _shim_outcome(), stacklevel=2)
        return _buffer(self, args, kwargs, _collect_options(task_id, producer, link, link_error, shadow, options))

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        # Celery re-sends the task itself; that message must not be buffered
        # in the (about to be discarded) scope of the failing run.
        with bypass_intercept():
            return super().retry(*args, **kwargs)


# -- the global intercept ----------------------------------------------------

_lock = threading.Lock()
_installed: dict[str, Any] = {}  # method name -> original function on celery's Task
_apps: set[Any] = set()  # apps intercepted (when not all)
_all_apps = False
_wrap_apps: set[Any] = set()
_wrap_all = False


def _intercepts(task: Any) -> bool:
    return _all_apps or task._get_app() in _apps


def _wraps(task: Any) -> bool:
    return _wrap_all or task._get_app() in _wrap_apps


def _intercepted_delay(self: Any, *args: Any, **kwargs: Any) -> Any:
    if intercept_bypassed() or not _intercepts(self):
        return _installed["delay"](self, *args, **kwargs)
    buffered = airlock.get_current_scope() is not None
    _warn(self, "delay", "buffered" if buffered else "sent", stacklevel=2)
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
    original = _installed["apply_async"]
    if intercept_bypassed() or _in_delay.get() or not _intercepts(self):
        return original(self, args, kwargs, task_id, producer, link, link_error, shadow, **options)
    if airlock.get_current_scope() is None:
        _warn(self, "apply_async", "sent", stacklevel=2)
        return original(self, args, kwargs, task_id, producer, link, link_error, shadow, **options)
    _warn(self, "apply_async", "buffered", stacklevel=2)
    return _buffer(self, args, kwargs, _collect_options(task_id, producer, link, link_error, shadow, options))


def _intercepted_retry(self: Any, *args: Any, **kwargs: Any) -> Any:
    # The retry message is Celery's own business: send it, never buffer it in
    # the scope of the run that is failing (that scope is discarded).
    with bypass_intercept():
        return _installed["retry"](self, *args, **kwargs)


def _scoped_call(self: Any, *args: Any, **kwargs: Any) -> Any:
    # Celery's tracer calls ``task.__call__`` (not just ``run``) when it sees
    # it replaced from outside celery.app.task (``task_has_custom``), so the
    # scope wraps exactly the task body: links and errbacks run outside it.
    original: Callable[..., Any] = _installed["__call__"]
    if not _wraps(self):
        return original(self, *args, **kwargs)
    with airlock.scope(origin=self.name):
        return original(self, *args, **kwargs)


_REPLACEMENTS: dict[str, Callable[..., Any]] = {
    "delay": _intercepted_delay,
    "apply_async": _intercepted_apply_async,
    "retry": _intercepted_retry,
    "__call__": _scoped_call,
}


def install_global_intercept(app: celery.Celery | None = None, *, wrap_task_execution: bool = True) -> None:
    """Make every ``.delay()``/``.apply_async()`` airlock-aware (a migration aid).

    Inside an active scope the call is buffered as an intent (its options
    become dispatch options); outside it is sent as before. Both warn with a
    ``DeprecationWarning`` at the calling line, so the warnings list the call
    sites left to migrate. ``app=None`` covers every Celery app; otherwise only
    tasks of ``app``.

    With ``wrap_task_execution`` every task run gets its own scope (origin:
    the task name): its intents flush when the task returns, and are
    discarded when it raises or calls ``self.retry()``. Install before the
    worker starts (Celery builds its task tracers at start-up).

    Installing again is harmless; :func:`uninstall_global_intercept` undoes it.
    """
    global _all_apps, _wrap_all
    with _lock:
        if app is None:
            _all_apps = True
        else:
            _apps.add(app)
        if wrap_task_execution:
            if app is None:
                _wrap_all = True
            else:
                _wrap_apps.add(app)
        if not _installed:
            for name, replacement in _REPLACEMENTS.items():
                _installed[name] = _BaseTask.__dict__[name]
                setattr(_BaseTask, name, replacement)


def uninstall_global_intercept() -> None:
    """Restore Celery's own methods and forget every installed app (for tests)."""
    global _all_apps, _wrap_all
    with _lock:
        for name, original in _installed.items():
            setattr(_BaseTask, name, original)
        _installed.clear()
        _apps.clear()
        _wrap_apps.clear()
        _all_apps = _wrap_all = False
