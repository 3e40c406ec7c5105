"""The huey executor against a real RedisHuey and a real consumer (thread workers)."""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from huey import RedisHuey

import airlock
from airlock.integrations.executors.huey import huey_executor
from integrations.redis_dbs import flushed_redis, redis_test_db, redis_url_for_db

HUEY_DB = redis_test_db()  # the one database AIRLOCK_TEST_REDIS_URL names


@dataclass
class HueyEnv:
    huey: RedisHuey
    client: redis.Redis
    results_key: str
    record: Any

    def wait_for_results(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.client.llen(self.results_key) < count:
            time.sleep(0.05)
        return [json.loads(raw) for raw in self.client.lrange(self.results_key, 0, -1)]

    @contextmanager
    def consumer(self) -> Iterator[None]:
        """Run a real consumer (scheduler + one worker thread) until the block ends."""
        # Consumer.start() installs its own signal handlers; give pytest its own back.
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        consumer = self.huey.create_consumer(
            workers=1, worker_type="thread", periodic=False, check_worker_health=False, scheduler_interval=1
        )
        consumer.start()
        try:
            yield
        finally:
            consumer.stop(graceful=True)
            for sig, handler in saved.items():
                signal.signal(sig, handler)


@pytest.fixture
def env() -> Iterator[HueyEnv]:
    for client in flushed_redis(HUEY_DB):
        name = f"airlock-exec-{uuid.uuid4().hex[:10]}"
        huey = RedisHuey(name, url=redis_url_for_db(HUEY_DB), results=False)
        results_key = f"{name}-results"

        @huey.task(name="airlock_exec.record")
        def record(value: Any, tag: str = "run") -> None:
            client.rpush(results_key, json.dumps({"value": value, "tag": tag, "at": time.time()}))

        yield HueyEnv(huey, client, results_key, record)


def test_flushed_intent_reaches_the_consumer(env: HueyEnv) -> None:
    with airlock.scope(executor=huey_executor):
        airlock.enqueue(env.record, 1, tag="first")
        airlock.enqueue(env.record, 2, tag="second")
        assert env.huey.pending_count() == 0
    assert env.huey.pending_count() == 2
    with env.consumer():
        results = env.wait_for_results(2)
    assert [(r["value"], r["tag"]) for r in results] == [(1, "first"), (2, "second")]


def test_discarded_scope_sends_nothing(env: HueyEnv) -> None:
    with pytest.raises(ZeroDivisionError):
        with airlock.scope(executor=huey_executor):
            airlock.enqueue(env.record, 1)
            1 / 0
    assert env.huey.pending_count() == env.huey.scheduled_count() == 0
    with airlock.scope(executor=huey_executor):  # control: a successful scope does send
        airlock.enqueue(env.record, 1)
    assert env.huey.pending_count() == 1


def test_delay_option_delays_the_task(env: HueyEnv) -> None:
    dispatched_at = time.time()
    with airlock.scope(executor=huey_executor):
        airlock.enqueue(env.record, "later", _dispatch_options={"delay": 1, "retries": 2})
    (message,) = env.huey.pending()
    assert message.eta is not None and message.retries == 2
    with env.consumer():
        (result,) = env.wait_for_results(1)
    assert result["value"] == "later"
    assert result["at"] >= dispatched_at + 1.0  # a delay is a lower bound


def test_options_are_carried_by_the_message(env: HueyEnv) -> None:
    with airlock.scope(executor=huey_executor):
        airlock.enqueue(env.record, 1, _dispatch_options={"retries": 3, "retry_delay": 7, "id": "airlock-exec-id"})
    (message,) = env.huey.pending()
    assert (message.retries, message.retry_delay, message.id) == (3, 7, "airlock-exec-id")


def test_lambda_argument_fails_at_enqueue(env: HueyEnv) -> None:
    with airlock.scope(executor=huey_executor) as scope:
        with pytest.raises(TypeError, match=r"record: its keyword argument 'tag' \(<function .*<lambda>.*pickle"):
            airlock.enqueue(env.record, 1, tag=lambda: None)
        assert scope.intents == []


def test_socket_argument_fails_at_enqueue(env: HueyEnv) -> None:
    with socket.socket() as sock, airlock.scope(executor=huey_executor) as scope:
        with pytest.raises(TypeError, match=r"record: its positional argument 0 \(<socket"):
            airlock.enqueue(env.record, sock)
        assert scope.intents == []


def test_unknown_option_fails_at_enqueue(env: HueyEnv) -> None:
    with airlock.scope(executor=huey_executor):
        with pytest.raises(TypeError, match=r"unknown Huey dispatch option 'countdown'"):
            airlock.enqueue(env.record, 1, _dispatch_options={"countdown": 10})
    assert env.huey.pending_count() == 0


def test_plain_callable_is_called_in_process() -> None:
    seen: list[int] = []
    with airlock.scope(executor=huey_executor):
        airlock.enqueue(seen.append, 3)
        assert seen == []
    assert seen == [3]


def test_task_without_explicit_name_is_named_after_its_function(env: HueyEnv) -> None:
    @env.huey.task()
    def send_invoice(order_id: int) -> None:
        return None

    with airlock.scope(executor=huey_executor):
        with pytest.raises(TypeError, match=r"^cannot enqueue send_invoice: its positional argument 0"):
            airlock.enqueue(send_invoice, lambda: None)
        assert airlock.enqueue(send_invoice, 1).name == "send_invoice"


def test_plain_callable_with_dispatch_options_fails_at_enqueue() -> None:
    with airlock.scope(executor=huey_executor):
        with pytest.raises(TypeError, match=r"append is a plain callable, not a Huey task.*'delay'"):
            airlock.enqueue([].append, 1, _dispatch_options={"delay": 5})


def test_eta_option_is_carried_by_the_message(env: HueyEnv) -> None:
    from datetime import datetime

    eta = datetime(2099, 1, 1)
    with airlock.scope(executor=huey_executor):
        airlock.enqueue(env.record, "far", _dispatch_options={"eta": eta})
    (message,) = env.huey.pending()
    assert message.eta == eta
