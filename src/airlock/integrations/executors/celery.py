"""Send intents to Celery: ``task.apply_async(args=, kwargs=, **dispatch_options)``.

``airlock.enqueue(send_email, 42, _dispatch_options={"countdown": 10, "queue": "mail"})``
becomes ``send_email.apply_async(args=(42,), kwargs={}, countdown=10, queue="mail")``
at flush. Dispatch options reach ``apply_async`` untouched, whatever their
name (``task_id``, which the outbox relies on, ``priority``, ``headers``,
``max_retries``, ...). A task is anything with an ``apply_async`` method (duck
typing: a Celery task, a subclass, a proxy, a canvas signature, a test double);
any other callable is called in-process and its dispatch options are ignored.

``celery_executor.validate`` runs at enqueue and refuses only what Celery
could never send: arguments the task's serializer cannot encode, and option
values of a type Celery rejects (or that are tied to a live broker connection).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any
from uuid import UUID

from .._extras import requires

with requires("celery"):
    import celery
    from celery.canvas import Signature
    from kombu import serialization
    from kombu.entity import Exchange, Queue

from ..._intent import Intent
from ._checks import check_option_type, check_options_serializable, check_serializable

__all__ = ["celery_executor", "CELERY_OPTIONS", "LIVE_OPTIONS", "bypass_intercept", "intercept_bypassed"]

#: The options ``Task.apply_async`` itself consumes. Any other name travels to
#: the broker as a message property: it is passed on all the same, and only
#: its value is checked (it must be encodable).
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

#: Options that hold a live broker connection. It is gone (released to the
#: pool, or closed) by the time a scope flushes, so an intent never keeps one:
#: the Celery helpers drop them when they buffer a call, ``validate`` refuses
#: them in ``_dispatch_options``. At flush Celery acquires its own.
LIVE_OPTIONS = frozenset({"producer", "connection", "publisher"})

_NUMBER = (int, float)
# The types Celery accepts for the options it interprets itself (None always
# means "not given"). A value of another type fails inside apply_async, after
# the transaction committed: validate refuses it at the enqueue line instead.
_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "countdown": _NUMBER,
    "eta": (datetime, str),
    "expires": (*_NUMBER, datetime, str),
    "priority": (int,),
    "task_id": (str, UUID),
    "queue": (str, Queue),
    "routing_key": (str,),
    "exchange": (str, Exchange),
    "headers": (Mapping,),
    "serializer": (str,),
    "compression": (str,),
    "time_limit": _NUMBER,
    "soft_time_limit": _NUMBER,
    "shadow": (str,),
    "retry_policy": (Mapping,),
}

# Set while airlock itself calls ``apply_async`` (the executor dispatching, a
# task retrying, Celery sending a chain's next step): the Celery helpers
# (LegacyTaskShim, the global intercept) then pass the call straight to Celery
# instead of buffering it again.
_bypass: ContextVar[bool] = ContextVar("airlock_celery_bypass", default=False)


@contextmanager
def bypass_intercept(active: bool = True) -> Iterator[None]:
    """Within this block, ``.delay()``/``.apply_async()`` go straight to Celery.

    ``bypass_intercept(False)`` restores interception for a nested block (a
    task body run eagerly from inside airlock's own dispatch).
    """
    token = _bypass.set(active)
    try:
        yield
    finally:
        _bypass.reset(token)


def intercept_bypassed() -> bool:
    """Whether the current call comes from airlock's own dispatch (see [`bypass_intercept()`][airlock.integrations.executors.celery.bypass_intercept])."""
    return _bypass.get()


def _unproxied(task: Any) -> Any:
    # ``@app.task`` hands out a proxy to the task; every attribute read through
    # it is forwarded. Checks that read several attributes read the task itself.
    resolve = getattr(type(task), "_get_current_object", None)
    return resolve(task) if resolve is not None else task


def _is_celery_task(task: Any) -> bool:
    # Duck typing: the method this executor calls. Subclasses, proxies,
    # signatures and ``Mock(spec=Task)`` all have it.
    return callable(getattr(task, "apply_async", None))


def celery_executor(intent: Intent) -> Any:
    """Dispatch ``intent`` with ``apply_async``; call a plain callable in-process.

    Returns Celery's ``AsyncResult`` (or the plain call's result). Dispatch
    options are ignored for a plain callable, as airlock-py 0.1 documented.
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


def _serializer_of(task: Any, options: Mapping[str, Any]) -> str:
    # Only real names count: a test double answers every attribute with a Mock.
    for name in (options.get("serializer"), getattr(task, "serializer", None)):
        if isinstance(name, str) and name:
            return name
    app = getattr(task, "app", None)
    conf = getattr(app, "conf", None) if isinstance(app, celery.Celery) else celery.current_app.conf
    name = getattr(conf, "task_serializer", None)
    return name if isinstance(name, str) and name else "json"


def _check_options(intent: Intent, options: Mapping[str, Any]) -> None:
    for name in LIVE_OPTIONS & options.keys():
        if options[name] is not None:
            raise TypeError(
                f"cannot enqueue {intent.name} with dispatch option {name!r}: it holds a live broker "
                "connection, which is gone by the time the scope flushes; leave it out (Celery acquires "
                "one from the app's pool at dispatch)"
            )
    for name, expected in _OPTION_TYPES.items():
        if name in options:
            check_option_type(intent, "Celery", name, expected, " or ".join(t.__name__ for t in expected))
    # Any other name travels to the broker as a message property: it must survive JSON.
    unknown = {name: value for name, value in options.items() if name not in CELERY_OPTIONS}
    if unknown:
        check_options_serializable(intent, "'json'", _json_dumps, unknown)


def _json_dumps(value: Any) -> object:
    dumps: Any = serialization.dumps  # kombu's, as for the message
    return dumps(value, serializer="json")


def validate(intent: Intent) -> None:
    """At enqueue: refuse what Celery could never send (never an option name)."""
    task = _unproxied(intent.task)
    if not _is_celery_task(task):
        return  # called in-process: options are ignored, nothing is encoded
    options = intent.dispatch_options or {}
    if options:
        _check_options(intent, options)
    serializer = _serializer_of(task, options)
    dumps: Any = serialization.dumps  # kombu: the encoder Celery itself uses

    def encode(value: Any) -> object:
        return dumps(value, serializer=serializer)

    check_serializable(intent, repr(serializer), encode)
    if isinstance(task, Signature):
        # A buffered canvas (group, chain, chord): its members' arguments
        # travel too.
        try:
            encode(dict(task))
        except Exception as exc:  # noqa: BLE001
            raise TypeError(
                f"cannot enqueue {intent.name}: the arguments of its tasks cannot be serialized by the "
                f"{serializer!r} serializer ({exc}); pass something it can encode, e.g. a primary key"
            ) from exc


celery_executor.validate = validate  # type: ignore[attr-defined]
