"""Send intents to a django-q2 cluster: ``async_task(task, *args, q_options=dispatch_options, **kwargs)``.

Any importable function (or picklable callable) is a django-q task, so every
intent goes to the broker; there is no in-process fallback. Dispatch options
go to ``async_task`` untouched as its ``q_options`` (``group``, ``hook``,
``timeout``, ``broker``, ``cluster``, ``task_name``, ...): django-q decides
what it does with them.

``django_q_executor.validate`` runs at enqueue and refuses what django-q
could never send or would misread: a task a worker could not receive (a
lambda, a nested function, something defined in ``__main__``), an argument or
option value pickle cannot encode, or a task keyword argument that
``async_task`` would take as one of its own options (it would never reach the
task).
"""

from __future__ import annotations

from typing import Any

from .._extras import requires

with requires("django-q"):
    from django_q.signing import PickleSerializer
    from django_q.tasks import async_task

from ..._intent import Intent
from ._checks import check_options_serializable, check_serializable, check_task_sendable

__all__ = ["django_q_executor", "ASYNC_TASK_KEYWORDS"]

#: The keyword arguments ``async_task`` keeps for itself unless ``q_options`` sets them.
ASYNC_TASK_KEYWORDS = frozenset(
    {
        "hook", "group", "save", "sync", "cached", "ack_failure", "iter_count", "iter_cached",
        "chain", "broker", "cluster", "timeout",
    }
)  # fmt: skip


def django_q_executor(intent: Intent) -> Any:
    """Queue ``intent`` for the django-q2 cluster; returns the django-q task id."""
    options = intent.dispatch_options
    if options:
        return async_task(intent.task, *intent.args, q_options=dict(options), **intent.kwargs)
    return async_task(intent.task, *intent.args, **intent.kwargs)


def validate(intent: Intent) -> None:
    """Fail at enqueue on what django-q could not send or would misread."""
    options = intent.dispatch_options or {}
    # async_task takes these keyword names as its own options (unless
    # q_options sets them) even when they were meant for the task.
    swallowed = sorted(
        name
        for name in intent.kwargs
        if name in ("q_options", "task_name") or (name in ASYNC_TASK_KEYWORDS and name not in options)
    )
    if swallowed:
        raise TypeError(
            f"cannot enqueue {intent.name} on django-q: its keyword argument(s) {swallowed} collide with "
            "django-q's own async_task options and would never reach the task; rename them"
        )
    dumps = PickleSerializer.dumps
    check_task_sendable(intent, "django-q", dumps)
    check_serializable(intent, "pickle", dumps)
    if options:
        # The broker is used, not stored; every other option travels in the pickled package.
        carried = {k: v for k, v in options.items() if k != "broker"}
        check_options_serializable(intent, "pickle", dumps, carried)


django_q_executor.validate = validate  # type: ignore[attr-defined]
