"""Send intents through Django's task framework: ``task.using(**dispatch_options).enqueue(*args, **kwargs)``.

Uses ``django.tasks`` where Django ships it (6.0+), else the ``django_tasks``
backport. Dispatch options are ``Task.using()``'s: ``priority``,
``queue_name``, ``run_after``, ``backend``. A plain callable (not a
``@task``) is called in-process.

``django_tasks_executor.validate`` runs at enqueue: unknown option names,
option values the task's backend rejects (a queue it does not serve, a
priority out of range) and arguments that are not JSON-serializable fail there.
"""

from __future__ import annotations

from typing import Any

from .._extras import requires

with requires("django-tasks"):
    try:  # Django >= 6.0
        from django.tasks import Task
    except ImportError:  # the backport
        from django_tasks.base import Task  # type: ignore[assignment,no-redef,unused-ignore]

# The framework's own "is this JSON?" check, wherever this version keeps it.
try:
    from django.utils.json import normalize_json
except ImportError:
    try:
        from django_tasks.utils import normalize_json  # type: ignore[no-redef,unused-ignore]
    except ImportError:  # pragma: no cover - neither has it: plain JSON is the rule
        from json import dumps as normalize_json  # type: ignore[assignment,unused-ignore]

from ..._intent import Intent
from ._checks import check_option_names, check_serializable

__all__ = ["django_tasks_executor", "DJANGO_TASKS_OPTIONS"]

DJANGO_TASKS_OPTIONS = frozenset({"priority", "queue_name", "run_after", "backend"})


def django_tasks_executor(intent: Intent) -> Any:
    """Enqueue ``intent`` on its task's backend; call a plain callable in-process.

    Returns the framework's ``TaskResult`` (or the plain call's result).
    """
    task = intent.task
    if not isinstance(task, Task):
        return task(*intent.args, **intent.kwargs)
    options = intent.dispatch_options
    if options:
        task = task.using(**options)
    return task.enqueue(*intent.args, **intent.kwargs)


def validate(intent: Intent) -> None:
    """Fail at enqueue on an option or argument the task's backend would refuse."""
    task = intent.task
    options = intent.dispatch_options
    if not isinstance(task, Task):
        if options:
            raise TypeError(
                f"{intent.name} is a plain callable, not a django task, so the django_tasks executor calls it "
                f"in-process and cannot honour dispatch options {sorted(options)}; decorate it with @task"
            )
        return
    check_option_names(intent, "django-tasks", DJANGO_TASKS_OPTIONS)
    if options:
        try:
            task.using(**options)  # the backend validates the resulting task
        except Exception as exc:
            raise TypeError(f"cannot enqueue {intent.name} with dispatch options {options!r}: {exc}") from exc
    check_serializable(intent, "JSON", normalize_json)


django_tasks_executor.validate = validate  # type: ignore[attr-defined]
