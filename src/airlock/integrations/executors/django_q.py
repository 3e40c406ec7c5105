"""Send intents to a django-q2 cluster: ``async_task(task, *args, q_options=dispatch_options, **kwargs)``.

Any importable function is a django-q task, so
every intent goes to the broker; there is no in-process fallback. Dispatch
options are django-q's own ``async_task`` options: ``group``, ``hook``,
``timeout``, ``save``, ``sync``, ``cached``, ``ack_failure``, ``iter_count``,
``iter_cached``, ``chain``, ``broker``, ``cluster``, ``task_name``.

``django_q_executor.validate`` runs at enqueue: an unknown option name, a
task a worker could not import (a lambda, a nested function), an argument
pickle cannot encode, or a task keyword argument django-q would swallow as
one of its own options fails there.
"""

from __future__ import annotations

from typing import Any

from .._extras import requires

with requires("django-q"):
    from django_q.signing import PickleSerializer
    from django_q.tasks import async_task

from ..._intent import Intent
from ._checks import check_importable, check_option_names, check_serializable

__all__ = ["django_q_executor", "DJANGO_Q_OPTIONS"]

DJANGO_Q_OPTIONS = frozenset(
    {
        "hook", "group", "save", "sync", "cached", "ack_failure", "iter_count", "iter_cached",
        "chain", "broker", "cluster", "timeout", "task_name",
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
    check_option_names(intent, "django-q", DJANGO_Q_OPTIONS)
    # async_task takes these keyword names as its own options even when they
    # were meant for the task; refuse rather than let them vanish.
    swallowed = sorted((DJANGO_Q_OPTIONS | {"q_options"}) & intent.kwargs.keys())
    if swallowed:
        raise TypeError(
            f"cannot enqueue {intent.name} on django-q: its keyword argument(s) {swallowed} collide with "
            "django-q's own async_task options and would never reach the task; rename them"
        )
    check_importable(intent, "django-q", intent.task)
    check_serializable(intent, "pickle", PickleSerializer.dumps)


django_q_executor.validate = validate  # type: ignore[attr-defined]
