"""The django_q executor against a real django-q2 cluster on the Redis broker (DB 5)."""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from django_q.brokers import Broker, get_broker
from django_q.cluster import Cluster
from django_q.signing import SignedPackage

import airlock
from airlock.integrations.executors.django_q import django_q_executor
from integrations.redis_dbs import flushed_redis

from .django_q_tasks import DJANGO_Q_DB, record

# The cluster processes are forked from this one and close its stale Django
# database connections: allow them database access like the test itself.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    yield from flushed_redis(DJANGO_Q_DB)


@pytest.fixture
def broker(client: redis.Redis) -> Iterator[Broker]:
    """The default broker of tests/django_settings.py's Q_CLUSTER (Redis DB 5)."""
    broker = get_broker()
    assert broker.connection.connection_pool.connection_kwargs["db"] == DJANGO_Q_DB
    broker.purge_queue()  # this cluster's own queue: a killed run may have left messages in it
    yield broker


@contextmanager
def running_cluster(broker: Broker) -> Iterator[Cluster]:
    """A real cluster (sentinel, pusher, worker, monitor processes) until the block ends."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    cluster = Cluster(broker)  # installs its own signal handlers: pytest's come back below
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _wait_for_results(
    client: redis.Redis, key: str, count: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and client.llen(key) < count:
        time.sleep(0.05)
    return [json.loads(raw) for raw in client.lrange(key, 0, -1)]


def test_flushed_intent_runs_on_the_cluster(client: redis.Redis, broker: Broker) -> None:
    key = f"airlock-exec-{uuid.uuid4().hex[:10]}"
    with airlock.scope(executor=django_q_executor):
        airlock.enqueue(record, key, 1, tag="first")
        airlock.enqueue(record, key, 2, tag="second")
        assert broker.queue_size() == 0
    assert broker.queue_size() == 2
    with running_cluster(broker):
        results = _wait_for_results(client, key, 2)
    assert sorted((r["value"], r["tag"]) for r in results) == [(1, "first"), (2, "second")]


def test_discarded_scope_sends_nothing(broker: Broker) -> None:
    with pytest.raises(RuntimeError):
        with airlock.scope(executor=django_q_executor):
            airlock.enqueue(record, "k", 1)
            raise RuntimeError
    assert broker.queue_size() == 0
    with airlock.scope(executor=django_q_executor):  # control: a successful scope does send
        airlock.enqueue(record, "k", 1)
    assert broker.queue_size() == 1


def test_broker_option_routes_to_that_broker(client: redis.Redis, broker: Broker) -> None:
    other = get_broker(list_key="airlock-exec-other")
    key = f"airlock-exec-{uuid.uuid4().hex[:10]}"
    with airlock.scope(executor=django_q_executor):
        airlock.enqueue(record, key, "routed", _dispatch_options={"broker": other, "group": "airlock-exec"})
    assert broker.queue_size() == 0
    assert other.queue_size() == 1
    with running_cluster(other):
        (result,) = _wait_for_results(client, key, 1)
    assert result["value"] == "routed"


def test_lambda_task_fails_at_enqueue() -> None:
    with airlock.scope(executor=django_q_executor) as scope:
        with pytest.raises(TypeError, match=r"cannot enqueue <lambda> on django-q: .*import path"):
            airlock.enqueue(lambda: None)
        assert scope.intents == []


def test_unpicklable_argument_fails_at_enqueue() -> None:
    with socket.socket() as sock, airlock.scope(executor=django_q_executor) as scope:
        with pytest.raises(TypeError, match=r"record: its positional argument 1 \(<socket.*pickle"):
            airlock.enqueue(record, "k", sock)
        assert scope.intents == []


def test_options_reach_async_task_untouched(broker: Broker) -> None:
    # django-q decides what an option means; airlock hands every one over as q_options.
    with airlock.scope(executor=django_q_executor):
        airlock.enqueue(record, "k", 1, _dispatch_options={"group": "airlock-exec", "queue": "x"})
    assert broker.queue_size() == 1
    package = SignedPackage.loads(broker.dequeue()[0][1])
    assert (package["group"], package["args"], package["kwargs"]) == ("airlock-exec", ("k", 1), {})


def test_swallowed_keyword_and_unpicklable_option_fail_at_enqueue() -> None:
    with airlock.scope(executor=django_q_executor) as scope:
        with pytest.raises(
            TypeError, match=r"record on django-q: its keyword argument\(s\) \['timeout'\] collide"
        ):
            airlock.enqueue(record, "k", 1, timeout=5)
        with pytest.raises(
            TypeError,
            match=r"record: its dispatch option 'hook' .* cannot be serialized by the pickle.*lambda",
        ):
            airlock.enqueue(record, "k", 1, _dispatch_options={"hook": lambda task: None})
        assert scope.intents == []
    # q_options that set the option themselves leave the task's keyword alone.
    with airlock.scope(executor=django_q_executor, policy=airlock.DropAll()) as scope:
        airlock.enqueue(record, "k", 1, tag="x", timeout=5, _dispatch_options={"timeout": 60})
        assert len(scope.intents) == 1
