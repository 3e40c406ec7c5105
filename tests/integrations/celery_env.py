"""A real Celery app, broker queue and in-process worker for the executor and Celery tests.

Everything lives in the Redis database named by ``AIRLOCK_TEST_REDIS_URL``
(and RabbitMQ at ``AIRLOCK_TEST_AMQP_URL``) under a random per-test prefix,
and is deleted after: nothing else in that database is touched.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from integrations.redis_dbs import redis_test_db, redis_url_for_db
from services import require_service

CELERY_DB = redis_test_db()  # the one database AIRLOCK_TEST_REDIS_URL names


@dataclass
class CeleryEnv:
    app: Celery
    queue: str
    results: redis.Redis
    results_key: str
    record: Any

    def _count(self, name: str) -> int:
        with self.app.connection_for_write() as conn:
            return int(
                conn.default_channel.queue_declare(queue=name, durable=True, auto_delete=False).message_count
            )

    def queue_size(self, name: str, expected: int | None = None, timeout: float = 5.0) -> int:
        """Messages waiting in queue ``name`` on the broker (declared if missing).

        RabbitMQ reports a message published on another channel a moment
        later, and more so on a loaded machine: given ``expected``, poll until
        the count reaches it (or ``timeout``) and return the last count seen.
        """
        count = self._count(name)
        deadline = time.monotonic() + timeout
        while expected is not None and count != expected and time.monotonic() < deadline:
            time.sleep(0.05)
            count = self._count(name)
        return count

    def wait_for_results(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.results.llen(self.results_key) >= count:
                break
            time.sleep(0.05)
        return [json.loads(raw) for raw in self.results.lrange(self.results_key, 0, -1)]

    def worker(self, *queues: str) -> Any:
        return start_worker(
            self.app,
            perform_ping_check=False,
            queues=list(queues or [self.queue]),
            shutdown_timeout=10,
            # With AMQP the worker's event loop only wakes up to notice the
            # shutdown request when a timer is due: the heartbeat is that timer.
            without_heartbeat=False,
        )


@contextmanager
def celery_env_on(
    broker_kind: str, results_redis: redis.Redis, task_cls: str | None = None
) -> Iterator[CeleryEnv]:
    """A fresh app on ``broker_kind`` ("redis" or "amqp") with an ``airlock_exec.record`` task.

    ``record`` appends what it ran with to a Redis list the test reads back.
    Queues are named ``airlock-exec-<random>``; they and the results are deleted after.
    """
    broker = redis_url_for_db(CELERY_DB) if broker_kind == "redis" else require_service("amqp")
    prefix = f"airlock-exec-{uuid.uuid4().hex[:10]}"
    app = Celery("airlock_exec_tests", broker=broker, set_as_current=False, task_cls=task_cls)
    app.conf.update(
        task_default_queue=prefix,
        task_ignore_result=True,
        broker_connection_retry_on_startup=False,
        worker_hijack_root_logger=False,
        task_create_missing_queues=True,
        broker_heartbeat=2,
    )
    results_key = f"{prefix}-results"

    @app.task(name="airlock_exec.record", bind=True, shared=False)
    def record(self: Any, value: Any, *, tag: str = "run") -> None:
        results_redis.rpush(
            results_key,
            json.dumps(
                {
                    "value": value,
                    "tag": tag,
                    "task_id": self.request.id,
                    "queue": (self.request.delivery_info or {}).get("routing_key"),
                    "at": time.time(),
                }
            ),
        )

    env = CeleryEnv(app, prefix, results_redis, results_key, record)
    try:
        yield env
    finally:
        with app.connection_for_write() as conn:
            for name in (prefix, f"{prefix}-other"):
                conn.default_channel.queue_delete(queue=name)
        for pattern in (f"{prefix}*", f"_kombu.binding.{prefix}*", f"_kombu.binding_permanent.{prefix}*"):
            for key in results_redis.scan_iter(pattern):
                results_redis.delete(key)
        app.close()
