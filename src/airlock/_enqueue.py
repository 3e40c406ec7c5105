"""``enqueue``: the one call domain code makes, and the hot path of the library."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

from ._context import current, local_policies
from ._errors import NoScopeError, UsageError
from ._intent import NO_KWARGS, Intent, _Meta, check_options, check_text, is_coroutine_task, task_name
from ._lifecycle import _EXITED

__all__ = ["enqueue"]

_current_scope = current.get
_local_policies = local_policies.get
_new = object.__new__
_CO_COROUTINE: Final = inspect.CO_COROUTINE


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
    innermost active scope. Returns the [`Intent`][airlock.Intent].

    ``_name`` overrides the intent's name (what policies match on),
    ``_origin`` records where it came from (default: the scope's origin),
    ``_dispatch_options`` are passed to the executor's backend (queue,
    countdown, ...).
    """
    scope: Any = _current_scope()
    if scope is None:
        _refuse(task)
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
        intent._meta = _meta(scope, _name, _origin, _dispatch_options, policies)
    if task is not scope._last_task:
        # The checks that depend only on the task and the scope; a scope
        # remembers the last task that passed them (loops enqueue the same one).
        _check_task(scope, task, intent)
    checks = scope._checks  # resolved by _check_task at the scope's first enqueue
    if checks or policies:
        if policies or not scope._inline:
            scope._judge_and_add(intent, checks)
            return intent
        # Scope._judge_and_add -> _judge -> _add, inlined for a scope whose
        # checks are all the library's own (see _resolve_checks): they run
        # without the judging guard, as _judge would run them.
        for check in checks:
            check(intent)
        meta = intent._meta  # a check may have added a condition
        if meta is not None and meta.conditions:
            scope._needs_filter = True
        if scope._state > _EXITED:
            scope._refuse(intent)
    # Scope._add (inlined): a scope class that overrides _add always has
    # checks and is never _inline (see _resolve_checks).
    scope._buffer.append(intent)
    if scope._state > _EXITED:  # flushed, maybe by another thread meanwhile
        scope._late([intent])
    return intent


def _check_task(scope: Any, task: object, intent: Intent) -> None:
    if not callable(task) and not _is_task_object(task):
        raise TypeError(f"airlock.enqueue() needs a callable task, got {task!r} ({type(task).__name__})")
    if scope._state > _EXITED:  # flushed/discarded, or a policy is judging
        scope._refuse(intent)
    if not scope._awaits:
        # A scope that flushes synchronously could never await a coroutine
        # task: say so here, at the line that asked for it.
        code = getattr(task, "__code__", None)
        if (code.co_flags & _CO_COROUTINE) if code is not None else is_coroutine_task(task):
            raise UsageError(
                f"{intent.name} is a coroutine function, but the scope that would dispatch it flushes "
                "synchronously and could never await it; use 'async with airlock.scope()' "
                "(in every enclosing scope that captures it)"
            )
    scope._last_task = task
    if scope._checks is None:
        scope._resolve_checks()


def _meta(scope: Any, name: object, origin: object, options: object, policies: tuple[Any, ...]) -> _Meta:
    check_text(name, "_name", "airlock.enqueue()")
    check_text(origin, "_origin", "airlock.enqueue()")
    return _Meta(
        name,  # type: ignore[arg-type]
        origin if origin is not None else scope._origin,  # type: ignore[arg-type]
        check_options(options, "airlock.enqueue()") if options is not None else None,
        policies,
    )


def _is_task_object(task: object) -> bool:
    # Django's task framework (django.tasks, and the django_tasks backport)
    # hands out task objects that are not callable: they are enqueued with
    # ``.enqueue()`` and run in-process with ``.call()``. They are tasks too.
    return callable(getattr(task, "call", None)) and callable(getattr(task, "enqueue", None))


def _refuse(task: object) -> None:
    """Raise why ``task`` cannot be enqueued without a scope."""
    if not callable(task) and not _is_task_object(task):
        raise TypeError(f"airlock.enqueue() needs a callable task, got {task!r} ({type(task).__name__})")
    raise NoScopeError(
        f"airlock.enqueue({task_name(task)}) was called without an active airlock.scope(); "
        "wrap the unit of work in 'with airlock.scope():' (or use a request/task integration)"
    )
