"""``enqueue``: the one call domain code makes, and the hot path of the library."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

from ._context import current, local_policies
from ._errors import NoScopeError, UsageError
from ._intent import NO_KWARGS, Intent, _Meta, task_name
from ._scope import _EXITED, _is_coroutine_callable

__all__ = ["enqueue"]

_current_scope = current.get
_local_policies = local_policies.get
_new = object.__new__
_CO_COROUTINE: Final = inspect.CO_COROUTINE
# One-entry memo of the last task found not to be a coroutine function.
_last_sync_task: list[object] = [None]


def enqueue(
    task: Callable[..., Any],
    /,
    *args: Any,
    _name: str | None = None,
    _origin: str | None = None,
    _dispatch_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Intent:
    """Ask for ``task(*args, **kwargs)`` to run when the active scope says so.

    Nothing runs now: the intent is judged by the policies in force (which may
    refuse it on the spot), validated by the executor, and buffered in the
    innermost active scope. Returns the :class:`Intent`.

    ``_name`` overrides the intent's name (what policies match on),
    ``_origin`` records where it came from (default: the scope's origin),
    ``_dispatch_options`` are passed to the executor's backend (queue,
    countdown, ...).
    """
    scope: Any = _current_scope()
    if scope is None or not callable(task):
        _refuse(task, scope)
    # Built in place rather than through Intent(...): ``*args``/``**kwargs``
    # are already fresh objects, and this runs once per effect per request.
    intent: Intent = _new(Intent)
    intent._task = task
    intent._args = args
    intent._kwargs = kwargs if kwargs else NO_KWARGS
    policies = _local_policies()
    if _name is None and _origin is None and _dispatch_options is None and not policies:
        intent._meta = scope._shared_meta
    else:
        intent._meta = _Meta(
            _name,
            _origin if _origin is not None else scope._origin,
            dict(_dispatch_options) if _dispatch_options is not None else None,
            policies,
        )
    if scope._state > _EXITED:  # flushed/discarded, or a policy is judging
        scope._refuse(intent)
    if not scope._async and task is not _last_sync_task[0]:
        # A sync scope could never await a coroutine task: say so here, at the
        # line that asked for it, instead of losing the effect at flush. The
        # answer never changes for a task, and loops enqueue the same one.
        code = getattr(task, "__code__", None)
        if (code.co_flags & _CO_COROUTINE) if code is not None else _is_coroutine_callable(task):
            raise UsageError(
                f"{intent.name} is a coroutine function, but the active scope flushes synchronously "
                "and could never await it; use 'async with airlock.scope()'"
            )
        _last_sync_task[0] = task
    checks = scope._checks
    if checks is None:
        checks = scope._resolve_checks()
    if checks or policies:
        scope._judge(intent, checks)
    scope._buffer.append(intent)
    return intent


def _is_task_object(task: object) -> bool:
    # Django's task framework (django.tasks, and the django_tasks backport)
    # hands out task objects that are not callable: they are enqueued with
    # ``.enqueue()`` and run in-process with ``.call()``. They are tasks too.
    return callable(getattr(task, "call", None)) and callable(getattr(task, "enqueue", None))


def _refuse(task: object, scope: object) -> None:
    """Raise why ``task`` cannot be enqueued now; return if it can after all (a task object)."""
    if not callable(task) and not _is_task_object(task):
        raise TypeError(f"airlock.enqueue() needs a callable task, got {task!r} ({type(task).__name__})")
    if scope is not None:
        return
    raise NoScopeError(
        f"airlock.enqueue({task_name(task)}) was called without an active airlock.scope(); "
        "wrap the unit of work in 'with airlock.scope():' (or use a request/task integration)"
    )
