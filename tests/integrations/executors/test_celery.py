"""The celery executor against real brokers (Redis and RabbitMQ) and a real worker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
import redis
from celery import Celery

import airlock
from airlock.integrations.executors.celery import celery_executor
from integrations.celery_env import CELERY_DB, CeleryEnv, celery_env_on
from integrations.redis_dbs import flushed_redis


@pytest.fixture
def results_redis() -> Iterator[redis.Redis]:
    yield from flushed_redis(CELERY_DB)


@pytest.fixture(params=["redis", "amqp"])
def celery_env(request: pytest.FixtureRequest, results_redis: redis.Redis) -> Iterator[CeleryEnv]:
    with celery_env_on(request.param, results_redis) as env:
        yield env


def test_flushed_intent_goes_through_the_broker_and_a_worker_runs_it(celery_env: CeleryEnv) -> None:
    with airlock.scope(executor=celery_executor):
        airlock.enqueue(celery_env.record, 41, tag="first")
        airlock.enqueue(celery_env.record, 42, tag="second")
        assert celery_env.queue_size(celery_env.queue, expected=0) == 0  # nothing escapes before the flush
    assert celery_env.queue_size(celery_env.queue, expected=2) == 2
    with celery_env.worker():
        results = celery_env.wait_for_results(2)
    assert [(r["value"], r["tag"]) for r in results] == [(41, "first"), (42, "second")]


def test_discarded_scope_sends_nothing(celery_env: CeleryEnv) -> None:
    with pytest.raises(RuntimeError):
        with airlock.scope(executor=celery_executor):
            airlock.enqueue(celery_env.record, 1)
            raise RuntimeError("the unit of work failed")
    assert celery_env.queue_size(celery_env.queue, expected=0) == 0
    # Control: the same enqueue in a scope that succeeds does reach the queue.
    with airlock.scope(executor=celery_executor):
        airlock.enqueue(celery_env.record, 2)
    assert celery_env.queue_size(celery_env.queue, expected=1) == 1


def test_queue_option_routes_to_that_queue(celery_env: CeleryEnv) -> None:
    other = f"{celery_env.queue}-other"
    with airlock.scope(executor=celery_executor):
        airlock.enqueue(celery_env.record, "routed", _dispatch_options={"queue": other})
    assert celery_env.queue_size(celery_env.queue, expected=0) == 0
    assert celery_env.queue_size(other, expected=1) == 1
    with celery_env.worker(other):
        (result,) = celery_env.wait_for_results(1)
    assert result["value"] == "routed"
    assert result["queue"] == other


def test_task_id_and_countdown_are_honoured(celery_env: CeleryEnv) -> None:
    task_id = f"airlock-exec-{uuid.uuid4()}"
    with celery_env.worker():
        dispatched_at = time.time()
        with airlock.scope(executor=celery_executor):
            airlock.enqueue(
                celery_env.record, "later", _dispatch_options={"countdown": 1, "task_id": task_id}
            )
        (result,) = celery_env.wait_for_results(1)
    assert result["task_id"] == task_id
    # A countdown is a lower bound: the worker may not run the task earlier.
    assert result["at"] >= dispatched_at + 1.0


def test_eta_travels_in_the_message(celery_env: CeleryEnv) -> None:
    eta = datetime(2099, 1, 1, tzinfo=UTC)
    with airlock.scope(executor=celery_executor):
        airlock.enqueue(celery_env.record, "far", _dispatch_options={"eta": eta})
    with celery_env.app.connection_for_write() as conn:
        message = conn.SimpleQueue(celery_env.queue).get(timeout=5)
        assert datetime.fromisoformat(message.headers["eta"]) == eta
        message.ack()


# -- enqueue-time validation (no broker needed: nothing may be sent) ---------


@pytest.fixture
def offline_app() -> Iterator[Celery]:
    app = Celery("airlock_exec_offline", broker="memory://", set_as_current=False)

    @app.task(name="airlock_exec.notify", shared=False)
    def notify(order_id: Any) -> None:
        raise AssertionError("never runs in these tests")

    yield app
    app.close()


def _unsaved_user() -> Any:
    from django.contrib.auth.models import User

    return User(username="ada")


@pytest.mark.parametrize(
    ("make_argument", "described"),
    [(_unsaved_user, "User"), (lambda: lambda: None, "lambda"), (lambda: object(), "object")],
    ids=["model-instance", "lambda", "object"],
)
def test_unserializable_argument_fails_at_enqueue(
    offline_app: Celery, make_argument: Any, described: str
) -> None:
    notify = offline_app.tasks["airlock_exec.notify"]
    argument = make_argument()
    with airlock.scope(executor=celery_executor) as scope:
        with pytest.raises(TypeError) as excinfo:
            airlock.enqueue(notify, argument)
        assert scope.intents == []
    message = str(excinfo.value)
    assert "notify" in message
    assert "positional argument 0" in message
    assert described in message
    assert "'json'" in message


def test_unserializable_keyword_argument_is_named(offline_app: Celery) -> None:
    notify = offline_app.tasks["airlock_exec.notify"]
    with airlock.scope(executor=celery_executor):
        with pytest.raises(TypeError, match=r"notify.*keyword argument 'order_id'"):
            airlock.enqueue(notify, order_id={1, 2})


def test_pickle_serializer_accepts_what_json_refuses(offline_app: Celery) -> None:
    notify = offline_app.tasks["airlock_exec.notify"]
    scope = airlock.Scope(executor=celery_executor)
    scope.enter()
    try:
        airlock.enqueue(notify, {1, 2}, _dispatch_options={"serializer": "pickle"})
        with pytest.raises(TypeError, match=r"notify.*cannot be serialized by the 'pickle' serializer"):
            airlock.enqueue(notify, lambda: None, _dispatch_options={"serializer": "pickle"})
    finally:
        scope.exit()
    assert [intent.args for intent in scope.discard()] == [({1, 2},)]


def test_any_option_name_passes_and_reaches_apply_async_untouched(offline_app: Celery) -> None:
    notify = offline_app.tasks["airlock_exec.notify"]
    options = {"max_retries": 0, "priority": 5, "headers": {"tenant": "a"}, "countdwon": 5}
    with mock.patch.object(type(notify), "apply_async") as apply_async:
        with airlock.scope(executor=celery_executor):
            airlock.enqueue(notify, 1, _dispatch_options=options)
    apply_async.assert_called_once_with(args=(1,), kwargs={}, **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"countdown": "soon"}, r"Celery needs int or float as the 'countdown' dispatch option, got 'soon'"),
        ({"priority": 1.5}, r"Celery needs int as the 'priority' dispatch option, got 1.5"),
        ({"headers": ["a"]}, r"Celery needs Mapping as the 'headers' dispatch option"),
        ({"producer": object()}, r"'producer': it holds a live broker connection"),
        ({"tenant": object()}, r"dispatch option 'tenant' \(<object.*cannot be serialized by the 'json'"),
    ],
    ids=["countdown-str", "priority-float", "headers-list", "producer", "unencodable-property"],
)
def test_option_values_celery_would_reject_fail_at_enqueue(
    offline_app: Celery, options: dict[str, Any], message: str
) -> None:
    notify = offline_app.tasks["airlock_exec.notify"]
    with airlock.scope(executor=celery_executor) as scope:
        with pytest.raises(TypeError, match=r"cannot enqueue notify.*" + message):
            airlock.enqueue(notify, 1, _dispatch_options=options)
        assert scope.intents == []


def test_plain_callable_is_called_in_process() -> None:
    calls: list[int] = []

    def remember(value: int) -> None:
        calls.append(value)

    with airlock.scope(executor=celery_executor):
        airlock.enqueue(remember, 7)
        assert calls == []
    assert calls == [7]


def test_plain_callable_ignores_dispatch_options() -> None:
    # As airlock-py 0.1 documented: options only mean something to a broker.
    calls: list[int] = []

    def remember(value: int) -> None:
        calls.append(value)

    with airlock.scope(executor=celery_executor):
        airlock.enqueue(remember, 1, _dispatch_options={"countdown": 60})
    assert calls == [1]
