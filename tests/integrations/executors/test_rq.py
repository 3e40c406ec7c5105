"""The rq executor against a real Redis and a real (burst) SimpleWorker."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any
from unittest.mock import Mock

import pytest
import redis
from rq import Queue, SimpleWorker

import airlock
from airlock.integrations.executors import rq as rq_module
from airlock.integrations.executors.rq import rq_executor
from integrations.redis_dbs import flushed_redis

from .rq_tasks import RQ_DB, Recorder, record


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    yield from flushed_redis(RQ_DB)


@pytest.fixture
def queue_name(client: redis.Redis) -> Iterator[str]:
    """A private queue name, with the executor configured on the test connection."""
    rq_executor.configure(connection=client, default_queue=f"airlock-exec-{uuid.uuid4().hex[:10]}")
    try:
        yield rq_module._default_queue
    finally:
        rq_executor.configure(None)


def _results(client: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(key, 0, -1)]


def test_flushed_intent_runs_on_a_worker(client: redis.Redis, queue_name: str) -> None:
    key = f"{queue_name}-results"
    with airlock.scope(executor=rq_executor):
        airlock.enqueue(record, key, 1, tag="first")
        airlock.enqueue(record, key, 2, tag="second")
        assert Queue(queue_name, connection=client).count == 0
    queue = Queue(queue_name, connection=client)
    assert queue.count == 2
    SimpleWorker([queue], connection=client).work(burst=True)
    assert [(r["value"], r["tag"]) for r in _results(client, key)] == [(1, "first"), (2, "second")]
    assert queue.count == 0


def test_discarded_scope_sends_nothing(client: redis.Redis, queue_name: str) -> None:
    queue = Queue(queue_name, connection=client)
    with pytest.raises(OSError):
        with airlock.scope(executor=rq_executor):
            airlock.enqueue(record, "k", 1)
            raise OSError
    assert queue.count == 0
    with airlock.scope(executor=rq_executor):  # control: a successful scope does send
        airlock.enqueue(record, "k", 1)
    assert queue.count == 1


def test_queue_option_routes_by_name_and_by_instance(client: redis.Redis, queue_name: str) -> None:
    key = f"{queue_name}-results"
    by_name = f"{queue_name}-by-name"
    by_instance = Queue(f"{queue_name}-by-instance", connection=client)
    with airlock.scope(executor=rq_executor):
        airlock.enqueue(record, key, "named", _dispatch_options={"queue": by_name})
        airlock.enqueue(record, key, "instance", _dispatch_options={"queue": by_instance})
    assert Queue(queue_name, connection=client).count == 0
    assert Queue(by_name, connection=client).count == 1
    assert by_instance.count == 1
    SimpleWorker([by_instance], connection=client).work(burst=True)
    assert [r["value"] for r in _results(client, key)] == ["instance"]


def test_enqueue_options_take_effect(client: redis.Redis, queue_name: str) -> None:
    queue = Queue(queue_name, connection=client)
    with airlock.scope(executor=rq_executor):
        airlock.enqueue(record, "k", "back")
        airlock.enqueue(
            record,
            "k",
            "front",
            _dispatch_options={"at_front": True, "job_id": "airlock-exec-job", "job_timeout": 30},
        )
    assert queue.job_ids == ["airlock-exec-job", queue.job_ids[1]]
    job = queue.fetch_job("airlock-exec-job")
    assert job is not None and job.timeout == 30


def test_enqueue_in_schedules_instead_of_queueing(client: redis.Redis, queue_name: str) -> None:
    queue = Queue(queue_name, connection=client)
    with airlock.scope(executor=rq_executor):
        airlock.enqueue(record, "k", "later", _dispatch_options={"enqueue_in": timedelta(minutes=5)})
    assert queue.count == 0
    assert queue.scheduled_job_registry.count == 1


def test_lambda_task_fails_at_enqueue(queue_name: str) -> None:
    with airlock.scope(executor=rq_executor) as scope:
        with pytest.raises(TypeError, match=r"cannot enqueue <lambda> on RQ: .*import path"):
            airlock.enqueue(lambda: None)
        assert scope.intents == []


def test_unserializable_argument_fails_at_enqueue(queue_name: str) -> None:
    with socket.socket() as sock, airlock.scope(executor=rq_executor) as scope:
        with pytest.raises(TypeError, match=r"record: its positional argument 1 \(<socket"):
            airlock.enqueue(record, "k", sock)
        with pytest.raises(TypeError, match=r"record: its keyword argument 'tag' \(<function"):
            airlock.enqueue(record, "k", 1, tag=lambda: None)
        assert scope.intents == []


def test_options_reach_the_queue_untouched() -> None:
    # RQ decides what an option means, exactly as if you called queue.enqueue yourself.
    queue = Mock(spec=Queue)
    with airlock.scope(executor=rq_executor):
        airlock.enqueue(
            record, "k", 1, tag="x", _dispatch_options={"queue": queue, "job_timeout": 30, "timeout": 9}
        )
        queue.enqueue.assert_not_called()
    queue.enqueue.assert_called_once_with(
        record, args=("k", 1), kwargs={"tag": "x"}, job_timeout=30, timeout=9
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"enqueue_at": "2099-01-01"},
            r"RQ needs a datetime as the 'enqueue_at' dispatch option, got '2099-01-01'",
        ),
        ({"enqueue_in": 300}, r"RQ needs a timedelta as the 'enqueue_in' dispatch option, got 300"),
    ],
    ids=["enqueue_at", "enqueue_in"],
)
def test_option_values_of_the_wrong_type_fail_at_enqueue(
    queue_name: str, options: dict[str, Any], message: str
) -> None:
    with airlock.scope(executor=rq_executor) as scope:
        with pytest.raises(TypeError, match=message):
            airlock.enqueue(record, "k", 1, _dispatch_options=options)
        assert scope.intents == []


def test_queue_name_without_connection_fails_at_enqueue() -> None:
    with airlock.scope(executor=rq_executor):
        with pytest.raises(TypeError, match=r"record on RQ queue 'mail': no connection configured"):
            airlock.enqueue(record, "k", 1, _dispatch_options={"queue": "mail"})


def test_enqueue_at_schedules_at_that_time(client: redis.Redis, queue_name: str) -> None:
    from datetime import datetime

    when = datetime(2099, 1, 1, tzinfo=UTC)
    queue = Queue(queue_name, connection=client)
    with airlock.scope(executor=rq_executor):
        airlock.enqueue(
            record, "k", "far", _dispatch_options={"enqueue_at": when, "job_id": "airlock-exec-far"}
        )
    assert queue.count == 0
    assert queue.scheduled_job_registry.get_scheduled_time("airlock-exec-far") == when


def test_queue_option_of_the_wrong_type_fails_at_enqueue(queue_name: str) -> None:
    with airlock.scope(executor=rq_executor):
        with pytest.raises(
            TypeError, match=r"'queue' dispatch option of record must be an rq.Queue or a queue name"
        ):
            airlock.enqueue(record, "k", 1, _dispatch_options={"queue": 5})


def test_callable_instance_runs_on_a_worker(client: redis.Redis, queue_name: str) -> None:
    key = f"{queue_name}-results"
    with airlock.scope(executor=rq_executor):
        airlock.enqueue(Recorder("instance"), key, 1)
    SimpleWorker([Queue(queue_name, connection=client)], connection=client).work(burst=True)
    assert [(r["value"], r["tag"]) for r in _results(client, key)] == [(1, "instance")]


def test_unsendable_tasks_fail_at_enqueue(queue_name: str) -> None:
    class Local:
        def __call__(self) -> None:
            return None

    with airlock.scope(executor=rq_executor) as scope:
        with pytest.raises(
            TypeError,
            match=r"cannot enqueue local on RQ: the task <.*cannot be serialized.*Can.t pickle local object",
        ):
            airlock.enqueue(Local(), _name="local")
        with pytest.raises(
            TypeError, match=r"cannot enqueue Recorder on RQ: RQ runs functions, methods and callable"
        ):
            airlock.enqueue(Recorder)
        assert scope.intents == []


def test_queue_test_double_is_a_queue() -> None:
    queue = Mock(spec=Queue)
    with airlock.scope(executor=rq_executor):
        airlock.enqueue(
            record, "k", 1, _dispatch_options={"queue": queue, "enqueue_in": timedelta(seconds=5)}
        )
    queue.enqueue_in.assert_called_once_with(timedelta(seconds=5), record, args=("k", 1), kwargs={})
    queue.enqueue.assert_not_called()
