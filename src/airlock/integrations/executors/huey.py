"""Send intents to Huey: a task wrapper's ``schedule(args=, kwargs=, **dispatch_options)``.

Dispatch options are Huey's own: ``delay`` (seconds or ``timedelta``),
``eta`` (``datetime``), ``priority``, ``retries``, ``retry_delay``,
``retry_backoff``, ``expires``, ``timeout``, ``id``. Without options the task
is enqueued as ``task(*args, **kwargs)`` would. A plain callable (not a Huey
task) is called in-process.

``huey_executor.validate`` runs at enqueue: unknown option names and arguments
the Huey instance's serializer (pickle by default) cannot encode fail there.
"""

from __future__ import annotations

from typing import Any

from .._extras import requires

with requires("huey"):
    from huey.api import TaskWrapper
    from huey.utils import normalize_time

from ..._intent import Intent
from ._checks import check_option_names, check_serializable

__all__ = ["huey_executor", "HUEY_OPTIONS"]

HUEY_OPTIONS = frozenset(
    {"delay", "eta", "priority", "retries", "retry_delay", "retry_backoff", "expires", "timeout", "id"}
)


def huey_executor(intent: Intent) -> Any:
    """Enqueue ``intent`` on its task's Huey instance; call a plain callable in-process.

    Returns Huey's ``Result`` handle (``None`` when results are off), or the
    plain call's result.
    """
    task = intent.task
    if not isinstance(task, TaskWrapper):
        return task(*intent.args, **intent.kwargs)
    options = dict(intent.dispatch_options or {})
    delay = options.pop("delay", None)
    eta = options.pop("eta", None)
    if hasattr(delay, "total_seconds"):
        delay = delay.total_seconds()
    if eta is not None or delay is not None:
        eta = normalize_time(eta, delay, task.huey.utc)
    # What ``TaskWrapper.schedule`` does, minus its "eta or delay required":
    # build the message with the options, then hand it to Huey.
    message = task.task_class(intent.args, intent.kwargs, eta=eta, **options)
    return task.huey.enqueue(message)


def validate(intent: Intent) -> None:
    """Fail at enqueue on an unknown option name or an argument the serializer cannot encode."""
    task = intent.task
    if not isinstance(task, TaskWrapper):
        if intent.dispatch_options:
            raise TypeError(
                f"{intent.name} is a plain callable, not a Huey task, so the huey executor calls it "
                f"in-process and cannot honour dispatch options {sorted(intent.dispatch_options)}"
            )
        return
    check_option_names(intent, "Huey", HUEY_OPTIONS)
    serializer = task.huey.serializer
    check_serializable(intent, f"Huey {type(serializer).__name__}", serializer.serialize)


huey_executor.validate = validate  # type: ignore[attr-defined]
