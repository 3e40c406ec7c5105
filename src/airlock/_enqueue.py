"""``enqueue``: the one call domain code makes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._context import current, local_policies
from ._errors import NoScopeError
from ._intent import Intent, _new_intent, task_name

__all__ = ["enqueue"]


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
    ``_origin`` records where it came from, ``_dispatch_options`` are passed to
    the executor's backend (queue, countdown, ...).
    """
    if not callable(task):
        raise TypeError(f"airlock.enqueue() needs a callable task, got {task!r} ({type(task).__name__})")
    scope = current.get()
    if scope is None:
        raise NoScopeError(
            f"airlock.enqueue({task_name(task)}) was called without an active airlock.scope(); "
            "wrap the unit of work in 'with airlock.scope():' (or use a request/task integration)"
        )
    if _dispatch_options is not None:
        _dispatch_options = dict(_dispatch_options)
    if _origin is None:
        _origin = scope._origin
    intent = _new_intent(task, args, kwargs, _name, _origin, _dispatch_options, local_policies.get())
    scope._add(intent)
    return intent
