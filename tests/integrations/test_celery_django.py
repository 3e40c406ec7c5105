"""LegacyTaskShim in a Django project: the app's own task class (``DjangoTask``) stays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.contrib.django.task import DjangoTask
from django.db import transaction

import airlock
from airlock.integrations.celery import LegacyTaskShim
from airlock.integrations.executors.celery import celery_executor
from integrations.celery_env import CELERY_DB, CeleryEnv, celery_env_on
from integrations.redis_dbs import flushed_redis

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture
def results_redis() -> Iterator[redis.Redis]:
    yield from flushed_redis(CELERY_DB)


@pytest.fixture
def env(results_redis: redis.Redis) -> Iterator[CeleryEnv]:
    # What Celery's Django fixup sets when the project did not choose a task class.
    with celery_env_on(
        "redis", results_redis, task_cls="celery.contrib.django.task:DjangoTask"
    ) as celery_env:
        yield celery_env


@pytest.fixture
def shimmed(env: CeleryEnv) -> Any:
    key = env.results_key

    @env.app.task(name="airlock_exec.django_shimmed", base=LegacyTaskShim, shared=False)
    def notify(value: Any) -> None:
        env.results.rpush(key, json.dumps({"value": value}))

    return notify


def test_shimmed_task_is_still_a_django_task(shimmed: Any) -> None:
    assert isinstance(shimmed, DjangoTask)
    assert isinstance(shimmed, LegacyTaskShim)
    assert shimmed.__class__.delay is LegacyTaskShim.delay  # the shim's delay wins


def test_delay_on_commit_waits_for_the_commit_then_goes_through_the_shim(
    env: CeleryEnv, shimmed: Any
) -> None:
    with airlock.scope(executor=celery_executor) as scope:
        with transaction.atomic():
            assert shimmed.delay_on_commit("committed") is None
            assert scope.intents == []  # Django holds it until the commit
        (intent,) = scope.intents  # committed: the shim's delay buffered it in the scope
        assert intent.args == ("committed",)
        with pytest.raises(KeyError), transaction.atomic():
            shimmed.delay_on_commit("rolled back")
            raise KeyError("rollback")
        assert len(scope.intents) == 1
        assert env.queue_size(env.queue, expected=0) == 0
    assert env.queue_size(env.queue, expected=1) == 1
    with env.worker():
        (result,) = env.wait_for_results(1)
    assert result == {"value": "committed"}


def test_delay_on_commit_inside_a_discarded_scope_sends_nothing(env: CeleryEnv, shimmed: Any) -> None:
    with pytest.raises(ValueError), airlock.scope(executor=celery_executor):
        with transaction.atomic():
            shimmed.apply_async_on_commit(("x",), countdown=5)
        raise ValueError("the unit of work failed after the commit")
    assert env.queue_size(env.queue, expected=0) == 0
