"""The huey executor against a real RedisHuey and a real consumer (thread workers)."""

from __future__ import annotations

import datetime
import json
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest.mock import Mock

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
        airlock.enqueue(
            env.record, 1, _dispatch_options={"retries": 3, "retry_delay": 7, "id": "airlock-exec-id"}
        )
    (message,) = env.huey.pending()
    assert (message.retries, message.retry_delay, message.id) == (3, 7, "airlock-exec-id")


def test_lambda_argument_fails_at_enqueue(env: HueyEnv) -> None:
    with airlock.scope(executor=huey_executor) as scope:
        with pytest.raises(
            TypeError, match=r"record: its keyword argument 'tag' \(<function .*<lambda>.*pickle"
        ):
            airlock.enqueue(env.record, 1, tag=lambda: None)
        assert scope.intents == []


def test_socket_argument_fails_at_enqueue(env: HueyEnv) -> None:
    with socket.socket() as sock, airlock.scope(executor=huey_executor) as scope:
        with pytest.raises(TypeError, match=r"record: its positional argument 0 \(<socket"):
            airlock.enqueue(env.record, sock)
        assert scope.intents == []


def test_option_without_a_time_is_carried_by_the_message(env: HueyEnv) -> None:
    # Huey's schedule() insists on eta/delay; a priority alone still travels.
    with airlock.scope(executor=huey_executor):
        airlock.enqueue(env.record, 1, _dispatch_options={"retries": 4, "expires": 60})
    (message,) = env.huey.pending()
    assert (message.retries, message.eta) == (4, None)
    assert message.expires_resolved is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"countdown": 10}, r"cannot enqueue record on Huey with dispatch options .*countdown"),
        ({"eta": "tomorrow"}, r"Huey needs a datetime as the 'eta' dispatch option, got 'tomorrow'"),
        ({"delay": "5s"}, r"Huey needs seconds or a timedelta as the 'delay' dispatch option"),
        ({"delay": 5, "eta": datetime.datetime(2099, 1, 1)}, r"Specify either an eta .* or delay"),
        (
            {"priority": 5},
            r"record with a 'priority' dispatch option: the storage of .* does not support priorities",
        ),
        ({"id": socket.socket}, None),
    ],
    ids=[
        "not-a-huey-option",
        "eta-type",
        "delay-type",
        "both-times",
        "priority-unsupported",
        "picklable-class-ok",
    ],
)
def test_options_huey_could_never_send_fail_at_enqueue(
    env: HueyEnv, options: dict[str, Any], message: str | None
) -> None:
    with airlock.scope(executor=huey_executor, policy=airlock.DropAll()) as scope:
        if message is None:  # control: a value the serializer encodes is accepted
            airlock.enqueue(env.record, 1, _dispatch_options=options)
            assert len(scope.intents) == 1
            return
        with pytest.raises(TypeError, match=message):
            airlock.enqueue(env.record, 1, _dispatch_options=options)
        assert scope.intents == []


def test_unpicklable_option_value_fails_at_enqueue(env: HueyEnv) -> None:
    with airlock.scope(executor=huey_executor) as scope:
        with pytest.raises(
            TypeError, match=r"record: its dispatch option 'id' \(<function .*<lambda>.*pickle"
        ):
            airlock.enqueue(env.record, 1, _dispatch_options={"id": lambda: None})
        assert scope.intents == []


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


def test_plain_callable_ignores_dispatch_options() -> None:
    seen: list[int] = []
    with airlock.scope(executor=huey_executor):
        airlock.enqueue(seen.append, 1, _dispatch_options={"delay": 5, "priority": 2})
        assert seen == []
    assert seen == [1]


class TaskProxy:
    """Forwards every attribute and call to the task it wraps (what tracing wrappers do)."""

    def __init__(self, task: Any) -> None:
        self._task = task

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._task(*args, **kwargs)


def test_a_proxy_is_enqueued_like_the_task(env: HueyEnv) -> None:
    with airlock.scope(executor=huey_executor):
        airlock.enqueue(TaskProxy(env.record), "plain", _name="record")
        airlock.enqueue(TaskProxy(env.record), "timed", _name="record", _dispatch_options={"delay": 0})
        airlock.enqueue(TaskProxy(env.record), "retried", _name="record", _dispatch_options={"retries": 3})
    with env.consumer():
        results = env.wait_for_results(3)
    assert sorted(r["value"] for r in results) == ["plain", "retried", "timed"]


def test_a_test_double_receives_the_call_the_task_would() -> None:
    from huey.api import TaskWrapper

    task = Mock(spec=TaskWrapper)
    when = datetime.datetime(2099, 1, 1)
    with airlock.scope(executor=huey_executor):
        airlock.enqueue(task, 1, _name="notify", to="ada")
        airlock.enqueue(task, 2, _name="notify", _dispatch_options={"eta": when, "retries": 2})
        task.assert_not_called()
    assert task.call_count == 1 and (task.call_args.args, task.call_args.kwargs) == ((1,), {"to": "ada"})
    task.schedule.assert_called_once_with(args=(2,), kwargs={}, eta=when, retries=2)
