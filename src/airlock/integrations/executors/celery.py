"""Send intents to Celery: ``task.apply_async(args=, kwargs=, **dispatch_options)``.

``airlock.enqueue(send_email, 42, _dispatch_options={"countdown": 10, "queue": "mail"})``
becomes ``send_email.apply_async(args=(42,), kwargs={}, countdown=10, queue="mail")``
at flush. Every ``apply_async`` option is a dispatch option, ``task_id`` included
(the outbox relies on it). A plain callable (no ``apply_async``) is called in-process.

``celery_executor.validate`` runs at enqueue: unknown option names and arguments
the task's serializer cannot encode fail at the ``enqueue`` line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from .._extras import requires

with requires("celery"):
    import celery
    from kombu import serialization

from ..._intent import Intent
from ._checks import check_option_names, check_serializable

__all__ = ["celery_executor", "CELERY_OPTIONS", "bypass_intercept", "intercept_bypassed"]

#: Every option ``Task.apply_async`` (and the message it builds) understands.
CELERY_OPTIONS = frozenset(
    {
        "add_to_parent", "argsrepr", "chain", "chord", "compression", "connection", "countdown",
        "declare", "delivery_mode", "eta", "exchange", "exchange_type", "expires", "group_id",
        "group_index", "headers", "ignore_result", "kwargsrepr", "link", "link_error", "mandatory",
        "origin", "parent_id", "priority", "producer", "publisher", "queue", "replaced_task_nesting",
        "reply_to", "result_cls", "retries", "retry", "retry_policy", "root_id", "router",
        "routing_key", "serializer", "shadow", "soft_time_limit", "stamped_headers", "task_id",
        "task_type", "time_limit",
    }
)  # fmt: skip

# Set while airlock itself calls ``apply_async`` (the executor dispatching, a
# task retrying): the Celery helpers (LegacyTaskShim, the global intercept)
# then pass the call straight to Celery instead of buffering it again.
_bypass: ContextVar[bool] = ContextVar("airlock_celery_bypass", default=False)


@contextmanager
def bypass_intercept() -> Iterator[None]:
    """Within this block, ``.delay()``/``.apply_async()`` go straight to Celery."""
    token = _bypass.set(True)
    try:
        yield
    finally:
        _bypass.reset(token)


def intercept_bypassed() -> bool:
    """Whether the current call comes from airlock's own dispatch (see :func:`bypass_intercept`)."""
    return _bypass.get()


def _unproxied(task: Any) -> Any:
    # ``@app.task`` hands out a proxy to the task; every attribute read through
    # it is forwarded. Checks that read several attributes read the task itself.
    resolve = getattr(type(task), "_get_current_object", None)
    return resolve(task) if resolve is not None else task


def _is_celery_task(task: Any) -> bool:
    return isinstance(task, celery.Task) or callable(getattr(task, "apply_async", None))


def celery_executor(intent: Intent) -> Any:
    """Dispatch ``intent`` with ``apply_async``; call a plain callable in-process.

    Returns Celery's ``AsyncResult`` (or the plain call's result).
    """
    task: Any = intent.task
    if not _is_celery_task(task):
        return task(*intent.args, **intent.kwargs)
    options = intent.dispatch_options or {}
    token = _bypass.set(True)
    try:
        return task.apply_async(args=intent.args, kwargs=intent.kwargs, **options)
    finally:
        _bypass.reset(token)


def _serializer_of(task: Any, options: dict[str, Any]) -> str:
    name = options.get("serializer") or getattr(task, "serializer", None)
    if not name:
        app = getattr(task, "app", None) or celery.current_app
        name = app.conf.task_serializer
    return str(name)


def validate(intent: Intent) -> None:
    """Fail at enqueue on an unknown option name or an argument Celery cannot serialize."""
    task = _unproxied(intent.task)
    options = intent.dispatch_options or {}
    if not _is_celery_task(task):
        if options:
            raise TypeError(
                f"{intent.name} is a plain callable, not a Celery task, so the celery executor calls it "
                f"in-process and cannot honour dispatch options {sorted(options)}; decorate it with @app.task"
            )
        return
    check_option_names(intent, "Celery", CELERY_OPTIONS)
    serializer = _serializer_of(task, options)
    dumps: Any = serialization.dumps  # kombu: the encoder Celery itself uses
    check_serializable(intent, repr(serializer), lambda value: dumps(value, serializer=serializer))


celery_executor.validate = validate  # type: ignore[attr-defined]
