"""Send intents through Django's task framework: ``task.using(**dispatch_options).enqueue(*args, **kwargs)``.

Works with ``django.tasks`` (Django 6.0+) and the ``django_tasks`` backport
alike. A task is a Django task when it has an ``enqueue`` method: a ``@task``
object, a subclass, a proxy or a test double (``Mock(spec=Task)``). Anything
else is a plain callable: it is called in-process and its dispatch options
are ignored (as airlock-py 0.1 documented).

Dispatch options go to ``Task.using()`` untouched (``priority``,
``queue_name``, ``run_after``, ``backend``, and whatever a newer version
adds); without options the task is enqueued as it is.

``django_tasks_executor.validate`` runs at enqueue and refuses what the
task's backend would refuse: options ``Task.using()`` does not take or
values the backend rejects (a queue it does not serve, a priority out of
range), and arguments that are not JSON-serializable.
"""

from __future__ import annotations

from typing import Any

from .._extras import requires

# Tasks are recognised by duck typing; this import only makes a missing
# framework fail here, naming the extra, rather than at the first dispatch.
with requires("django-tasks"):
    try:  # Django >= 6.0
        import django.tasks  # noqa: F401
    except ImportError:  # the backport
        import django_tasks  # noqa: F401

# The framework's own "is this JSON?" check, wherever this version keeps it.
try:
    from django.utils.json import normalize_json
except ImportError:
    try:
        from django_tasks.utils import normalize_json  # type: ignore[no-redef,unused-ignore]
    except ImportError:  # pragma: no cover - neither has it: plain JSON is the rule
        from json import dumps as normalize_json  # type: ignore[assignment,unused-ignore]

from ..._intent import Intent
from ._checks import check_serializable

__all__ = ["django_tasks_executor"]


def _enqueuer(task: Any) -> Any:
    """The task's ``enqueue``, or ``None`` for a plain callable."""
    enqueue = getattr(task, "enqueue", None)
    return enqueue if callable(enqueue) else None


def django_tasks_executor(intent: Intent) -> Any:
    """Enqueue ``intent`` on its task's backend; call a plain callable in-process.

    Returns the framework's ``TaskResult`` (or the plain call's result).
    """
    task: Any = intent.task
    enqueue = _enqueuer(task)
    if enqueue is None:
        return task(*intent.args, **intent.kwargs)
    options = intent.dispatch_options
    if options:
        enqueue = task.using(**options).enqueue
    return enqueue(*intent.args, **intent.kwargs)


def validate(intent: Intent) -> None:
    """Fail at enqueue on an option or argument the task's backend would refuse."""
    task: Any = intent.task
    if _enqueuer(task) is None:
        return  # called in-process: nothing is serialized, options are ignored
    options = intent.dispatch_options
    if options:
        try:
            task.using(**options)  # the framework and the backend validate the resulting task
        except Exception as exc:
            raise TypeError(
                f"cannot enqueue {intent.name} with dispatch options {dict(options)!r}: {exc}"
            ) from exc
    check_serializable(intent, "JSON", normalize_json)


django_tasks_executor.validate = validate  # type: ignore[attr-defined]
