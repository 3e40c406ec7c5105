"""airlock.integrations.celery: LegacyTaskShim and the global intercept, on a real broker and worker."""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import airlock
from airlock.integrations.celery import LegacyTaskShim, install_global_intercept, uninstall_global_intercept
from airlock.integrations.executors.celery import celery_executor
from integrations.celery_env import CELERY_DB, CeleryEnv, celery_env_on
from integrations.redis_dbs import flushed_redis


@pytest.fixture
def results_redis() -> Iterator[redis.Redis]:
    yield from flushed_redis(CELERY_DB)


@pytest.fixture
def env(results_redis: redis.Redis) -> Iterator[CeleryEnv]:
    with celery_env_on("redis", results_redis) as celery_env:
        yield celery_env


@pytest.fixture
def intercept() -> Iterator[None]:
    """Uninstall whatever a test installed, even when it fails."""
    try:
        yield
    finally:
        uninstall_global_intercept()


def _next_line() -> int:
    """The line number right after the caller's line (where the call under test sits)."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno + 1


def _deprecations(record: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in record if issubclass(w.category, DeprecationWarning) and "airlock" in str(w.message)]


# -- LegacyTaskShim -----------------------------------------------------------


@pytest.fixture
def shim_task(env: CeleryEnv) -> Any:
    key = env.results_key

    @env.app.task(name="airlock_exec.shimmed", base=LegacyTaskShim, shared=False)
    def shimmed(value: Any) -> None:
        env.results.rpush(key, json.dumps({"value": value, "tag": "shim", "at": 0, "queue": None, "task_id": None}))

    return shimmed


def test_shim_delay_is_buffered_warned_at_the_call_site_and_runs_on_a_worker(env: CeleryEnv, shim_task: Any) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with airlock.scope(executor=celery_executor) as scope:
            line = _next_line()
            intent = shim_task.delay(5)
            assert isinstance(intent, airlock.Intent)
            assert scope.intents == [intent]
            assert env.queue_size(env.queue, expected=0) == 0
    (warning,) = _deprecations(record)
    assert (warning.filename, warning.lineno) == (__file__, line)
    assert "shimmed.delay()" in str(warning.message)
    assert env.queue_size(env.queue, expected=1) == 1
    with env.worker():
        (result,) = env.wait_for_results(1)
    assert result["value"] == 5


def test_shim_apply_async_options_become_dispatch_options(env: CeleryEnv, shim_task: Any) -> None:
    other = f"{env.queue}-other"
    with pytest.warns(DeprecationWarning) as record:
        with airlock.scope(executor=celery_executor):
            line = _next_line()
            intent = shim_task.apply_async((6,), queue=other, task_id="airlock-exec-fixed-id")
    assert intent.dispatch_options == {"queue": other, "task_id": "airlock-exec-fixed-id"}
    assert (record[0].filename, record[0].lineno) == (__file__, line)
    assert env.queue_size(env.queue, expected=0) == 0
    assert env.queue_size(other, expected=1) == 1


def test_shim_outside_a_scope_raises_and_sends_nothing(env: CeleryEnv, shim_task: Any) -> None:
    with pytest.warns(DeprecationWarning, match=r"shimmed.delay\(\) .*refused"):
        with pytest.raises(airlock.NoScopeError, match="shimmed"):
            shim_task.delay(1)
    with pytest.warns(DeprecationWarning), pytest.raises(airlock.NoScopeError):
        shim_task.apply_async((1,), countdown=3)
    assert env.queue_size(env.queue, expected=0) == 0


def test_shim_discarded_scope_sends_nothing(env: CeleryEnv, shim_task: Any) -> None:
    with pytest.warns(DeprecationWarning), pytest.raises(KeyError):
        with airlock.scope(executor=celery_executor):
            shim_task.delay(1)
            raise KeyError("failed")
    assert env.queue_size(env.queue, expected=0) == 0


def test_shim_retry_is_sent_not_buffered(env: CeleryEnv) -> None:
    key = env.results_key

    @env.app.task(name="airlock_exec.shim_retry", base=LegacyTaskShim, bind=True, shared=False, max_retries=1)
    def flaky(self: Any, value: Any) -> None:
        if self.request.retries == 0:
            raise self.retry(countdown=0)
        env.results.rpush(key, json.dumps({"value": value, "attempt": self.request.retries}))

    with pytest.warns(DeprecationWarning):
        with airlock.scope(executor=celery_executor):
            flaky.delay("x")
    with env.worker():
        (result,) = env.wait_for_results(1)
    assert result == {"value": "x", "attempt": 1}


# -- install_global_intercept: call sites -------------------------------------


def test_intercept_buffers_inside_a_scope_with_options(env: CeleryEnv, intercept: None) -> None:
    install_global_intercept(env.app)
    other = f"{env.queue}-other"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with airlock.scope(executor=celery_executor) as scope:
            delay_line = _next_line()
            env.record.delay(1, tag="delay")
            apply_line = _next_line()
            env.record.apply_async((2,), {"tag": "apply"}, queue=other)
            assert [i.dispatch_options for i in scope.intents] == [None, {"queue": other}]
            assert env.queue_size(env.queue) == env.queue_size(other, expected=0) == 0
    assert [(w.filename, w.lineno) for w in _deprecations(record)] == [(__file__, delay_line), (__file__, apply_line)]
    assert "buffered" in str(_deprecations(record)[0].message)
    assert env.queue_size(env.queue, expected=1) == 1
    assert env.queue_size(other, expected=1) == 1  # the executor sent them once: no re-interception


def test_intercept_passes_through_outside_a_scope(env: CeleryEnv, intercept: None) -> None:
    install_global_intercept(env.app)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = _next_line()
        env.record.delay(3)
    (warning,) = _deprecations(record)
    assert (warning.filename, warning.lineno) == (__file__, line)
    assert "right away" in str(warning.message)
    assert env.queue_size(env.queue, expected=1) == 1


def test_intercepted_apply_async_passes_through_outside_a_scope_with_its_options(
    env: CeleryEnv, intercept: None
) -> None:
    install_global_intercept()
    other = f"{env.queue}-other"
    with pytest.warns(DeprecationWarning, match="right away") as record:
        line = _next_line()
        env.record.apply_async((3,), queue=other)
    assert (record[0].filename, record[0].lineno) == (__file__, line)
    assert env.queue_size(env.queue, expected=0) == 0
    assert env.queue_size(other, expected=1) == 1


def test_intercept_discarded_scope_sends_nothing(env: CeleryEnv, intercept: None) -> None:
    install_global_intercept()
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError):
        with airlock.scope(executor=celery_executor):
            env.record.delay(4)
            env.record.apply_async((5,), countdown=1)
            raise ValueError("rolled back")
    assert env.queue_size(env.queue, expected=0) == 0


def test_installing_twice_is_harmless_and_uninstall_restores(env: CeleryEnv, intercept: None) -> None:
    install_global_intercept(env.app)
    install_global_intercept(env.app)
    install_global_intercept()
    with pytest.warns(DeprecationWarning) as record:
        with airlock.scope(executor=celery_executor) as scope:
            env.record.delay(1)
            assert len(scope.intents) == 1
    assert len(_deprecations(record.list)) == 1
    assert env.queue_size(env.queue, expected=1) == 1

    uninstall_global_intercept()
    with warnings.catch_warnings(record=True) as after:
        warnings.simplefilter("always")
        with airlock.scope(executor=celery_executor) as scope:
            env.record.delay(2)  # plain Celery again: sent at once, not buffered
            assert scope.intents == []
    assert _deprecations(after) == []
    assert env.queue_size(env.queue, expected=2) == 2


def test_intercept_for_one_app_leaves_other_apps_alone(env: CeleryEnv, intercept: None) -> None:
    from celery import Celery

    other_app = Celery("airlock_exec_other", broker="memory://", set_as_current=False)
    install_global_intercept(other_app)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with airlock.scope(executor=celery_executor) as scope:
            env.record.delay(1)
            assert scope.intents == []
    assert _deprecations(record) == []
    assert env.queue_size(env.queue, expected=1) == 1
    other_app.close()


# -- install_global_intercept: each task run in its own scope ------------------


def _define_parent(env: CeleryEnv) -> Any:
    record = env.record

    @env.app.task(name="airlock_exec.parent", bind=True, shared=False, max_retries=1)
    def parent(self: Any, mode: str) -> None:
        scope = airlock.get_current_scope()
        intent = record.delay(f"{mode}-attempt-{self.request.retries}", tag="child")
        if mode == "ok":
            origins = f"origin={intent.origin} scope={scope.origin if scope else None}"
            record.apply_async((origins,), {"tag": "parent"})
        if mode == "fail":
            raise ValueError("the task failed")
        if mode == "retry" and self.request.retries == 0:
            raise self.retry(countdown=0)

    return parent


def test_task_run_flushes_on_success(env: CeleryEnv, intercept: None) -> None:
    airlock.configure(executor=celery_executor)
    install_global_intercept(env.app)
    parent = _define_parent(env)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        parent.delay("ok")  # outside a scope: passes through to the broker
        with env.worker():
            results = env.wait_for_results(2)
    assert sorted((r["tag"], r["value"]) for r in results) == [
        ("child", "ok-attempt-0"),
        ("parent", "origin=airlock_exec.parent scope=airlock_exec.parent"),
    ]


def test_task_run_discards_on_exception_and_on_retry(env: CeleryEnv, intercept: None) -> None:
    airlock.configure(executor=celery_executor)
    install_global_intercept(env.app)
    parent = _define_parent(env)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        parent.delay("fail")
        parent.delay("retry")
        with env.worker():
            # The retry message itself is sent (never buffered): the second
            # attempt runs and its child escapes; the failing attempts' do not.
            results = env.wait_for_results(1)
            assert env.queue_size(env.queue, expected=0) == 0
    assert [(r["tag"], r["value"]) for r in results] == [("child", "retry-attempt-1")]
