"""Send intents to RQ: ``queue.enqueue(task, args=, kwargs=, **dispatch_options)``.

The target queue is the ``queue`` dispatch option: an ``rq.Queue``, or a
queue name resolved on the connection configured once with
:func:`configure` (also reachable as ``rq_executor.configure``). Without a
``queue`` option the configured default queue (``"default"``) is used.

The other dispatch options are ``Queue.enqueue``'s own (``job_timeout``,
``at_front``, ``job_id``, ``result_ttl``, ``ttl``, ``failure_ttl``,
``description``, ``depends_on``, ``meta``, ``retry``, ``repeat``,
``on_success``, ``on_failure``, ``on_stopped``, ``rate_limit``, ``unique``,
``webhooks``, ``pipeline``), plus ``enqueue_at`` (a ``datetime``) and
``enqueue_in`` (a ``timedelta``) to schedule the job instead (the worker
must run with its scheduler). Every callable is an RQ task, so there is no
in-process fallback.

``rq_executor.validate`` runs at enqueue: unknown option names, a queue name
with no configured connection, tasks a worker could not import (lambdas,
nested functions, ``__main__``) and arguments the queue's serializer (pickle
by default) cannot encode fail there.
"""

from __future__ import annotations

import threading
import types
from typing import Any

from .._extras import requires

with requires("rq"):
    from redis import Redis
    from rq import Queue

from ..._intent import Intent
from ._checks import check_importable, check_option_names, check_serializable

__all__ = ["rq_executor", "configure", "RQ_OPTIONS"]

RQ_OPTIONS = frozenset(
    {
        "queue", "enqueue_at", "enqueue_in", "job_timeout", "description", "result_ttl", "ttl",
        "failure_ttl", "depends_on", "job_id", "at_front", "meta", "retry", "repeat", "on_success",
        "on_failure", "on_stopped", "rate_limit", "webhooks", "pipeline", "unique",
    }
)  # fmt: skip

_lock = threading.Lock()
_connection: Redis | None = None
_default_queue = "default"


def configure(connection: Redis | None = None, *, default_queue: str = "default") -> None:
    """Set the Redis connection that queue names resolve on, and the default queue name.

    Call once at start-up (``configure(None)`` forgets the connection). An
    ``rq.Queue`` passed as the ``queue`` dispatch option always wins.
    """
    global _connection, _default_queue
    with _lock:
        _connection = connection
        _default_queue = default_queue


def _queue_for(intent: Intent, target: Any) -> Queue:
    if isinstance(target, Queue):
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
    if at is not None:
        return queue.enqueue_at(at, intent.task, args=intent.args, kwargs=intent.kwargs, **options)
    if delay is not None:
        return queue.enqueue_in(delay, intent.task, args=intent.args, kwargs=intent.kwargs, **options)
    return queue.enqueue(intent.task, args=intent.args, kwargs=intent.kwargs, **options)


def validate(intent: Intent) -> None:
    """Fail at enqueue on what RQ could not send."""
    check_option_names(intent, "RQ", RQ_OPTIONS)
    options = intent.dispatch_options or {}
    queue = _queue_for(intent, options.get("queue"))
    task = intent.task
    if isinstance(task, types.FunctionType):
        check_importable(intent, "RQ", task)
    elif not isinstance(task, (types.MethodType, types.BuiltinFunctionType)):
        raise TypeError(
            f"cannot enqueue {intent.name} on RQ: RQ runs module-level functions and methods, "
            f"not {type(task).__name__} objects"
        )
    serializer = queue.serializer
    check_serializable(intent, getattr(serializer, "__name__", type(serializer).__name__), serializer.dumps)


rq_executor.validate = validate  # type: ignore[attr-defined]
rq_executor.configure = configure  # type: ignore[attr-defined]
