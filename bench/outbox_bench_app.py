"""Celery app and tasks for bench/outbox.py (broker: $AIRLOCK_OUTBOX_BENCH_BROKER, Redis DB 8)."""

from __future__ import annotations

import os
from celery import Celery

from airlock.integrations.executors.celery import celery_executor  # noqa: F401  (the relay's --executor)

QUEUE = "airlock-outbox-bench"
app = Celery("airlock_outbox_bench", broker=os.environ.get("AIRLOCK_OUTBOX_BENCH_BROKER", "redis://127.0.0.1:6379/8"))
app.conf.update(task_default_queue=QUEUE)


@app.task(name="outbox_bench_app.noop_task")
def noop_task(n: int) -> None:
    """Never run in the benchmark: only published."""


def noop(n: int) -> None:
    """A plain task for the flush-cost benchmark."""
