"""The dramatiq executor against a real RedisBroker and a real dramatiq Worker."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest.mock import Mock

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

    def worker(self) -> _RunningWorker:
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


def test_option_names_reach_the_message_untouched(env: DramatiqEnv) -> None:
    # Dramatiq does not restrict option names (a middleware of your own reads
    # its own), so airlock passes every option on as it is.
    with airlock.scope(executor=dramatiq_executor):
        airlock.enqueue(env.record, 1, _dispatch_options={"tenant": "acme", "dealy": 10})
    message = _next_message(env)
    assert (message.options["tenant"], message.options["dealy"]) == ("acme", 10)


def _next_message(env: DramatiqEnv) -> Any:
    consumer = env.broker.consume(env.queue, prefetch=1, timeout=1000)
    try:
        message = next(consumer)
    finally:
        consumer.close()
    assert message is not None
    return message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"delay": "10s"},
            r"Dramatiq needs milliseconds or a timedelta as the 'delay' dispatch option, got '10s'",
        ),
        ({"on_success": print}, r"needs an actor or an actor name as the 'on_success' dispatch option"),
        ({"tenant": object()}, r"record: its dispatch option 'tenant' \(<object .*\) cannot be serialized"),
    ],
    ids=["delay-type", "callback-type", "unencodable-value"],
)
def test_option_values_dramatiq_could_never_send_fail_at_enqueue(
    env: DramatiqEnv, options: dict[str, Any], message: str
) -> None:
    with airlock.scope(executor=dramatiq_executor) as scope:
        with pytest.raises(TypeError, match=message):
            airlock.enqueue(env.record, 1, _dispatch_options=options)
        assert scope.intents == []
    assert env.pending() == 0


def test_plain_callable_is_called_in_process() -> None:
    seen: list[int] = []
    with airlock.scope(executor=dramatiq_executor):
        airlock.enqueue(seen.append, 3)
        assert seen == []
    assert seen == [3]


def test_plain_callable_ignores_dispatch_options() -> None:
    # airlock-py 0.1 documented it: a plain callable is called in-process and
    # its dispatch options are ignored.
    seen: list[int] = []
    with airlock.scope(executor=dramatiq_executor):
        airlock.enqueue(seen.append, 1, _dispatch_options={"delay": 5, "queue_name": "x"})
        assert seen == []
    assert seen == [1]


class ActorProxy:
    """Forwards every attribute to the actor it wraps (what tracing wrappers do)."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._actor, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an actor proxy must be sent, never called in-process")


def test_a_proxy_and_a_subclass_are_sent_like_the_actor(env: DramatiqEnv) -> None:
    class AuditedActor(dramatiq.Actor):  # type: ignore[type-arg]
        pass

    def audited(value: Any, tag: str = "run") -> None:
        env.record.fn(value, tag)

    sub = AuditedActor(
        audited,
        actor_name="airlock_exec.audited",
        queue_name=env.queue,
        priority=0,
        broker=env.broker,
        options={},
    )
    with airlock.scope(executor=dramatiq_executor):
        airlock.enqueue(ActorProxy(env.record), "proxied", _name="record")
        airlock.enqueue(sub, "subclassed")
    assert env.pending() == 2
    with env.worker():
        results = env.wait_for_results(2)
    assert sorted(r["value"] for r in results) == ["proxied", "subclassed"]


def test_a_test_double_receives_the_call_the_actor_would() -> None:
    actor = Mock(spec=dramatiq.Actor)
    with airlock.scope(executor=dramatiq_executor):
        airlock.enqueue(
            actor, 1, _name="notify", to="ada", _dispatch_options={"delay": 500, "tenant": "acme"}
        )
        actor.send_with_options.assert_not_called()
    actor.send_with_options.assert_called_once_with(args=(1,), kwargs={"to": "ada"}, delay=500, tenant="acme")
    actor.assert_not_called()
