"""Send intents to RQ: ``queue.enqueue(task, args=, kwargs=, **dispatch_options)``.

The target queue is the ``queue`` dispatch option: a queue object (anything
with an ``enqueue`` method: an ``rq.Queue``, a subclass, a test double such as
``Mock(spec=rq.Queue)``), or a queue name resolved on the connection
configured once with [`configure()`][airlock.integrations.executors.rq.configure] (also reachable as
``rq_executor.configure``). Without a ``queue`` option the configured default
queue (``"default"``) is used.

``enqueue_at`` (a ``datetime``) and ``enqueue_in`` (a ``timedelta``) schedule
the job with ``queue.enqueue_at`` / ``queue.enqueue_in`` instead (the worker
must run with its scheduler). Every other dispatch option goes to RQ
untouched (``job_timeout``, ``at_front``, ``job_id``, ``result_ttl``,
``depends_on``, ``meta``, ``retry``, ``on_success``, ...); RQ decides what it
does with them, exactly as if you had called ``queue.enqueue`` yourself.
Every callable is an RQ task (RQ runs functions, methods and callable
instances on its workers), so there is no in-process fallback.

``rq_executor.validate`` runs at enqueue and refuses what RQ could never
send: a queue name with no configured connection, a ``queue``,
``enqueue_at`` or ``enqueue_in`` of the wrong type, a task a worker could not
receive (a lambda, a nested function, something defined in ``__main__``, an
object the queue's serializer cannot encode) and arguments that serializer
(pickle by default) cannot encode.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from .._extras import requires

with requires("rq"):
    from redis import Redis
    from rq import Queue

from ..._intent import Intent
from ._checks import check_option_type, check_serializable, check_task_sendable

__all__ = ["rq_executor", "configure"]

_lock = threading.Lock()
_connection: Redis | None = None
_default_queue = "default"


def configure(connection: Redis | None = None, *, default_queue: str = "default") -> None:
    """Set the Redis connection that queue names resolve on, and the default queue name.

    Call once at start-up (``configure(None)`` forgets the connection). A
    queue object passed as the ``queue`` dispatch option always wins.
    """
    global _connection, _default_queue
    with _lock:
        _connection = connection
        _default_queue = default_queue


def _is_queue(target: Any) -> bool:
    return not isinstance(target, (str, type)) and callable(getattr(target, "enqueue", None))


def _queue_for(intent: Intent, target: Any) -> Any:
    if target is not None and _is_queue(target):
        return target
    if target is None:
        target = _default_queue
    if not isinstance(target, str):
        raise TypeError(
            f"the 'queue' dispatch option of {intent.name} must be an rq.Queue or a queue name, got {target!r}"
        )
    connection = _connection
    if connection is None:
        raise TypeError(
            f"cannot enqueue {intent.name} on RQ queue {target!r}: no connection configured; call "
            "airlock.integrations.executors.rq.configure(connection=Redis(...)) once, or pass an rq.Queue "
            "as the 'queue' dispatch option"
        )
    return Queue(target, connection=connection)


def rq_executor(intent: Intent) -> Any:
    """Enqueue ``intent`` as an RQ job; returns the ``rq.job.Job``."""
    options = dict(intent.dispatch_options or {})
    queue = _queue_for(intent, options.pop("queue", None))
    at = options.pop("enqueue_at", None)
    delay = options.pop("enqueue_in", None)
    args, kwargs = intent.args, dict(intent.kwargs)
    if at is not None:
        return queue.enqueue_at(at, intent.task, args=args, kwargs=kwargs, **options)
    if delay is not None:
        return queue.enqueue_in(delay, intent.task, args=args, kwargs=kwargs, **options)
    return queue.enqueue(intent.task, args=args, kwargs=kwargs, **options)


def validate(intent: Intent) -> None:
    """Fail at enqueue on what RQ could never send."""
    options = intent.dispatch_options or {}
    queue = _queue_for(intent, options.get("queue"))
    check_option_type(intent, "RQ", "enqueue_at", (datetime,), "a datetime")
    check_option_type(intent, "RQ", "enqueue_in", (timedelta,), "a timedelta")
    if isinstance(intent.task, type):
        raise TypeError(
            f"cannot enqueue {intent.name} on RQ: RQ runs functions, methods and callable instances, "
            f"not the class {intent.task.__name__}"
        )
    serializer = getattr(queue, "serializer", None)
    dumps = getattr(serializer, "dumps", None)
    check_task_sendable(intent, "RQ", dumps)
    if dumps is not None:  # None: a queue stand-in (a test double) with nothing to encode with
        check_serializable(intent, getattr(serializer, "__name__", type(serializer).__name__), dumps)


rq_executor.validate = validate  # type: ignore[attr-defined]
rq_executor.configure = configure  # type: ignore[attr-defined]
