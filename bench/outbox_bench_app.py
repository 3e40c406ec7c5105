"""Tasks, executors and the Celery app for bench/outbox.py.

Broker and list live in the Redis database of $AIRLOCK_OUTBOX_BENCH_REDIS, under keys the benchmark
names ($AIRLOCK_OUTBOX_BENCH_QUEUE, $AIRLOCK_OUTBOX_BENCH_LIST) and deletes afterwards.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import Celery

from airlock import Intent
from airlock.integrations.executors.celery import celery_executor  # noqa: F401  (the relay's --executor)

REDIS = os.environ.get("AIRLOCK_OUTBOX_BENCH_REDIS", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("AIRLOCK_OUTBOX_BENCH_QUEUE", "airlock-outbox-bench")
LIST = os.environ.get("AIRLOCK_OUTBOX_BENCH_LIST", "airlock-outbox-bench-list")

app = Celery("airlock_outbox_bench", broker=REDIS)
app.conf.update(task_default_queue=QUEUE)

_client: Any = None


@app.task(name="outbox_bench_app.noop_task")
def noop_task(n: int) -> None:
    """Never run in the benchmark: only published."""


def rpush_task(n: int) -> None:
    """The relayed task of the throughput benchmark: one Redis RPUSH (one client per process)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(REDIS)
    _client.rpush(LIST, n)


def noop(n: int) -> None:
    """A plain task for the flush-cost benchmark."""


def noop_executor(intent: Intent) -> None:
    """Runs nothing: what is left is the relay's own cost."""
