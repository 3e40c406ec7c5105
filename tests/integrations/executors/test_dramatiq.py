"""The dramatiq executor against a real RedisBroker and a real dramatiq Worker."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

import airlock
from airlock.integrations.executors.dramatiq import dramatiq_executor
from integrations.redis_dbs import flushed_redis, redis_test_db, redis_url_for_db

DRAMATIQ_DB = redis_test_db()  # the one database AIRLOCK_TEST_REDIS_URL names


@dataclass
class DramatiqEnv:
    broker: RedisBroker
    namespace: str
    queue: str
    client: redis.Redis
    results_key: str
    record: dramatiq.Actor[..., None]

    def pending(self, queue: str | None = None) -> int:
        """Messages stored on the broker for ``queue`` (ready or delayed)."""
        name = queue or self.queue
        return sum(int(self.client.hlen(f"{self.namespace}:{q}.msgs")) for q in (name, f"{name}.DQ"))

    def wait_for_results(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.client.llen(self.results_key) < count:
            time.sleep(0.05)
        return [json.loads(raw) for raw in self.client.lrange(self.results_key, 0, -1)]

    def worker(self) -> "_RunningWorker":
        return _RunningWorker(self.broker)


class _RunningWorker:
    def __init__(self, broker: RedisBroker) -> None:
        self.worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)

    def __enter__(self) -> dramatiq.Worker:
        self.worker.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()


@pytest.fixture
def env() -> Iterator[DramatiqEnv]:
    for client in flushed_redis(DRAMATIQ_DB):
        namespace = f"airlock-exec-{uuid.uuid4().hex[:10]}"
        broker = RedisBroker(url=redis_url_for_db(DRAMATIQ_DB), namespace=namespace)
        results_key = f"{namespace}-results"

        def record(value: Any, tag: str = "run") -> None:
            client.rpush(results_key, json.dumps({"value": value, "tag": tag, "at": time.time()}))

        actor = dramatiq.actor(record, broker=broker, actor_name="airlock_exec.record", queue_name=namespace)
        try:
            yield DramatiqEnv(broker, namespace, namespace, client, results_key, actor)
        finally:
            broker.close()


def test_flushed_intent_reaches_the_worker(env: DramatiqEnv) -> None:
    with airlock.scope(executor=dramatiq_executor):
        airlock.enqueue(env.record, 1, tag="first")
        airlock.enqueue(env.record, 2, tag="second")
        assert env.pending() == 0
    assert env.pending() == 2
    with env.worker():
        results = env.wait_for_results(2)
    assert [(r["value"], r["tag"]) for r in results] == [(1, "first"), (2, "second")]


def test_discarded_scope_sends_nothing(env: DramatiqEnv) -> None:
    with pytest.raises(LookupError):
        with airlock.scope(executor=dramatiq_executor):
            airlock.enqueue(env.record, 1)
            raise LookupError
    assert env.pending() == 0
    with airlock.scope(executor=dramatiq_executor):  # control: a successful scope does send
        airlock.enqueue(env.record, 1)
    assert env.pending() == 1


def test_delay_option_delays_the_message(env: DramatiqEnv) -> None:
    with env.worker():
        dispatched_at = time.time()
        with airlock.scope(executor=dramatiq_executor):
            airlock.enqueue(env.record, "later", _dispatch_options={"delay": 1000})
        (result,) = env.wait_for_results(1)
    assert result["value"] == "later"
    assert result["at"] >= dispatched_at + 1.0  # a delay is a lower bound


def test_middleware_options_travel_with_the_message(env: DramatiqEnv) -> None:
    with airlock.scope(executor=dramatiq_executor):
        airlock.enqueue(env.record, 1, _dispatch_options={"max_retries": 0, "time_limit": 5000})
    consumer = env.broker.consume(env.queue, prefetch=1, timeout=1000)
    try:
        message = next(consumer)
    finally:
        consumer.close()
    assert message is not None
    assert message.options["max_retries"] == 0
    assert message.options["time_limit"] == 5000


@pytest.mark.parametrize(
    ("argument", "described"),
    [(lambda: None, "lambda"), (object(), "object"), ({1, 2}, "{1, 2}")],
    ids=["lambda", "object", "set"],
)
def test_unserializable_argument_fails_at_enqueue(env: DramatiqEnv, argument: Any, described: str) -> None:
    with airlock.scope(executor=dramatiq_executor) as scope:
        with pytest.raises(TypeError) as excinfo:
            airlock.enqueue(env.record, 1, tag=argument)
        assert scope.intents == []
    assert "record" in str(excinfo.value)
    assert "keyword argument 'tag'" in str(excinfo.value)
    assert described in str(excinfo.value)


def test_socket_argument_fails_at_enqueue(env: DramatiqEnv) -> None:
    with socket.socket() as sock, airlock.scope(executor=dramatiq_executor):
        with pytest.raises(TypeError, match=r"record: its positional argument 0 \(<socket"):
            airlock.enqueue(env.record, sock)


def test_unknown_option_fails_at_enqueue(env: DramatiqEnv) -> None:
    with airlock.scope(executor=dramatiq_executor) as scope:
        with pytest.raises(TypeError, match=r"unknown Dramatiq dispatch option 'dealy'.*did you mean 'delay'"):
            airlock.enqueue(env.record, 1, _dispatch_options={"dealy": 10})
        assert scope.intents == []
    assert env.pending() == 0


def test_plain_callable_is_called_in_process() -> None:
    seen: list[int] = []
    with airlock.scope(executor=dramatiq_executor):
        airlock.enqueue(seen.append, 3)
        assert seen == []
    assert seen == [3]


def test_plain_callable_with_dispatch_options_fails_at_enqueue() -> None:
    with airlock.scope(executor=dramatiq_executor):
        with pytest.raises(TypeError, match=r"append is a plain callable, not a Dramatiq actor.*'delay'"):
            airlock.enqueue([].append, 1, _dispatch_options={"delay": 5})
