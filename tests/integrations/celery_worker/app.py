"""The app a real ``celery worker`` process runs in the Celery integration tests.

Configured the way a project configures it: ``install_global_intercept()`` and
``airlock.configure(...)`` in the module that creates the app, before the
worker starts. The test that starts the worker passes, in the environment:

* ``AIRLOCK_CELERY_BROKER`` - the broker URL (Redis or RabbitMQ),
* ``AIRLOCK_CELERY_RESULTS`` - a Redis URL for what the tasks observed (and
  the chord's result backend),
* ``AIRLOCK_CELERY_PREFIX`` - the queue name, and the prefix of every key.

Tasks report to Redis with plain client calls (never through airlock), so
what the test reads is what the worker did.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery import Celery, chain, chord, group, signals

import airlock
from airlock.integrations.celery import LegacyTaskShim, install_global_intercept
from airlock.integrations.executors.celery import celery_executor

PREFIX = os.environ["AIRLOCK_CELERY_PREFIX"]
RESULTS_URL = os.environ["AIRLOCK_CELERY_RESULTS"]
RESULTS_KEY = f"{PREFIX}:results"  # a list: one JSON entry per record() run
RUNS_KEY = f"{PREFIX}:runs"  # a list: one JSON entry per parent run, written after its scope ended
READY_KEY = f"{PREFIX}:ready"

app = Celery("airlock_worker_tests", broker=os.environ["AIRLOCK_CELERY_BROKER"], backend=RESULTS_URL)
app.conf.update(
    task_default_queue=PREFIX,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    result_expires=300,
    # RabbitMQ: the worker's event loop wakes up for due timers (a retry's
    # ETA, a shutdown request) on the connection heartbeat's tick.
    broker_heartbeat=2,
)
results = redis.Redis.from_url(RESULTS_URL)


class KwargsScope(airlock.Scope):
    """A custom scope shaped like airlock-py 0.1's examples: ``__init__(self, **kwargs)``."""

    def __init__(self, **kwargs: Any) -> None:
        self.received = sorted(kwargs)
        super().__init__(**kwargs)


airlock.configure(executor=celery_executor, scope_cls=KwargsScope)
install_global_intercept(app)


def _report(key: str, **entry: Any) -> None:
    results.rpush(key, json.dumps({**entry, "at": time.time()}))


@app.task(name="worker_app.record", bind=True)
def record(self: Any, value: Any, tag: str = "run") -> Any:
    """What the test looks for: the worker ran this message (with its task id)."""
    _report(RESULTS_KEY, value=value, tag=tag, task_id=self.request.id, tenant=self.request.get("tenant"))
    return value


@app.task(name="worker_app.value", ignore_result=False)
def value(x: Any) -> Any:
    """A chord header member (chords need their members' results)."""
    return x


@app.task(name="worker_app.parent", bind=True, max_retries=1)
def parent(self: Any, mode: str, key: str) -> str:
    """Make two children (``.delay()`` and ``airlock.enqueue``), then end as ``mode`` says."""
    attempt = self.request.retries
    scope = airlock.get_current_scope()
    self.request.airlock_seen = {
        "scope": type(scope).__name__ if scope else None,
        "received": getattr(scope, "received", None),
        "origin": scope.origin if scope else None,
    }
    record.delay(f"{key}-delay-{attempt}", tag="child")
    airlock.enqueue(record, f"{key}-enqueue-{attempt}", tag="child")
    if mode == "raise":
        raise ValueError("the task failed after making its children")
    if mode == "retry" and attempt == 0:
        raise self.retry(countdown=0)
    if mode == "replace":
        return self.replace(record.s(f"{key}-replacement", tag="replacement"))  # type: ignore[no-any-return]
    return key


@app.task(name="worker_app.shim_step", base=LegacyTaskShim, bind=True)
def shim_step(self: Any, value: int, key: str) -> int:
    """A chain step on LegacyTaskShim: Celery sends the next step itself, after the body."""
    _report(RESULTS_KEY, value=f"{key}-step-{value}", tag="shim", task_id=self.request.id)
    return value + 1


@app.task(name="worker_app.direct")
def direct(key: str) -> None:
    """Call another task as a plain function (in this process), then enqueue."""
    record(f"{key}-called-directly", tag="direct")
    airlock.enqueue(record, f"{key}-enqueued", tag="direct")


@app.task(name="worker_app.fan_out", bind=True)
def fan_out(self: Any, key: str, fail: bool) -> None:
    """Canvas inside a task run: a group, a chain and a chord, then succeed or fail."""
    group(record.s(f"{key}-group-{i}", tag="canvas") for i in range(2)).apply_async()
    chain(record.si(f"{key}-chain-0", tag="canvas"), record.si(f"{key}-chain-1", tag="canvas")).apply_async()
    chord([value.s(1), value.s(2)], record.s(tag=f"{key}-chord")).apply_async()
    if fail:
        raise RuntimeError("the canvas must not escape")


@signals.task_postrun.connect
def _after_parent(
    sender: Any = None, task_id: str | None = None, args: Any = None, state: str | None = None, **_: Any
) -> None:
    # After the run's scope ended (it ends inside the task body's call): if
    # children were sent, they are in the broker by now.
    if sender is not None and sender.name in {"worker_app.parent", "worker_app.fan_out"}:
        seen = getattr(sender.request, "airlock_seen", None) or {}
        _report(
            RUNS_KEY,
            task=sender.name,
            args=list(args or ()),
            state=state,
            task_id=task_id,
            retries=sender.request.retries,
            **seen,
        )


@signals.worker_ready.connect
def _ready(**_: Any) -> None:
    results.set(READY_KEY, "1")
