"""Send intents to Huey: a task's ``schedule(args=, kwargs=, **dispatch_options)``.

A task is a Huey task when it has a ``schedule`` method: a Huey
``TaskWrapper`` (what ``@huey.task()`` returns), a subclass, a proxy or a
test double (``Mock(spec=TaskWrapper)``). Anything else is a plain callable:
it is called in-process and its dispatch options are ignored (as airlock-py
0.1 documented).

Without dispatch options the task is enqueued exactly as ``task(*args,
**kwargs)`` would. With ``eta`` or ``delay`` among them, the options go to
``task.schedule(args=..., kwargs=..., **options)`` untouched. Options without
a time (``priority``, ``retries``, ``expires``, ``id``, ...), which Huey's
``schedule()`` refuses, build the same message ``schedule`` builds, minus the
``eta``, and enqueue it on the task's Huey instance.

``huey_executor.validate`` runs at enqueue and refuses what Huey could never
send: arguments or option values the Huey instance's serializer (pickle by
default) cannot encode, an option Huey's message does not take, an ``eta``
that is not a ``datetime``, a ``delay`` that is not seconds or a ``timedelta``,
a ``priority`` on a storage without priorities (``RedisHuey``; use
``PriorityRedisHuey``).
"""

from __future__ import annotations

import datetime
from typing import Any

from .._extras import requires

with requires("huey"):
    from huey.utils import normalize_time

from ..._intent import Intent
from ._checks import check_option_type, check_options_serializable, check_serializable

__all__ = ["huey_executor"]

_TIMES = ("eta", "delay")


def _scheduler(task: Any) -> Any:
    """The task's ``schedule``, or ``None`` for a plain callable."""
    schedule = getattr(task, "schedule", None)
    return schedule if callable(schedule) else None


def huey_executor(intent: Intent) -> Any:
    """Enqueue ``intent`` on its task's Huey instance; call a plain callable in-process.

    Returns Huey's ``Result`` handle (``None`` when results are off), or the
    plain call's result.
    """
    task: Any = intent.task
    schedule = _scheduler(task)
    if schedule is None:
        return task(*intent.args, **intent.kwargs)
    options = intent.dispatch_options
    if not options:
        return task(*intent.args, **intent.kwargs)
    if "eta" in options or "delay" in options:
        return schedule(args=intent.args, kwargs=dict(intent.kwargs), **options)
    # ``schedule`` insists on a time; build its message without one.
    return task.huey.enqueue(task.task_class(intent.args, dict(intent.kwargs), **options))


def validate(intent: Intent) -> None:
    """Fail at enqueue on an argument or option Huey could never send."""
    task = intent.task
    if _scheduler(task) is None:
        return  # called in-process: nothing is serialized, options are ignored
    check_option_type(intent, "Huey", "eta", (datetime.datetime,), "a datetime")
    check_option_type(intent, "Huey", "delay", (int, float, datetime.timedelta), "seconds or a timedelta")
    huey: Any = getattr(task, "huey", None)
    serializer = getattr(huey, "serializer", None)
    if serializer is None:
        return  # a stand-in without a Huey instance (a test double): nothing to encode with
    name = f"Huey {type(serializer).__name__}"
    check_serializable(intent, name, serializer.serialize)
    options = intent.dispatch_options
    if not options:
        return
    if (
        options.get("priority") is not None
        and getattr(getattr(huey, "storage", None), "priority", True) is False
    ):
        raise TypeError(
            f"cannot enqueue {intent.name} with a 'priority' dispatch option: the storage of {huey!r} does not "
            "support priorities (use PriorityRedisHuey, or drop the option)"
        )
    task_class = getattr(task, "task_class", None)
    if task_class is not None:
        carried = {k: v for k, v in options.items() if k not in _TIMES}
        try:
            # The message Huey would build: it names any option it does not take.
            eta = None
            if "eta" in options or "delay" in options:
                eta = normalize_time(options.get("eta"), options.get("delay"), huey.utc)
            task_class((), {}, eta=eta, **carried)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"cannot enqueue {intent.name} on Huey with dispatch options {dict(options)!r}: {exc}"
            ) from exc
        check_options_serializable(intent, name, serializer.serialize, carried)


huey_executor.validate = validate  # type: ignore[attr-defined]
