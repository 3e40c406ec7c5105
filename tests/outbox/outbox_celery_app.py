"""A Celery app for the outbox broker tests: broker and result store from the environment."""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from celery import Celery

BROKER = os.environ.get("AIRLOCK_OUTBOX_BROKER", "redis://127.0.0.1:6379/11")
RESULTS = os.environ.get("AIRLOCK_OUTBOX_RESULTS", "redis://127.0.0.1:6379/11")
QUEUE = os.environ.get("AIRLOCK_OUTBOX_QUEUE", "airlock-outbox-e2e")
RESULTS_KEY = f"{QUEUE}:results"

app = Celery("airlock_outbox_test", broker=BROKER)
app.conf.update(
    task_default_queue=QUEUE,
    task_publish_retry=False,  # a dead broker fails the publish now; the relay does the retrying
    broker_connection_retry_on_startup=True,
    # Fail a publish to a dead broker at once (kombu would reconnect for seconds).
    broker_transport_options={
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.1,
    },  # fmt: skip
    worker_hijack_root_logger=False,
)


@app.task(bind=True, name="outbox_celery_app.record_task")
def record_task(self: Any, n: int, label: str = "") -> None:
    """Record the call under its Celery task id (the outbox row id)."""
    redis.Redis.from_url(RESULTS).hset(RESULTS_KEY, self.request.id, json.dumps([n, label]))
