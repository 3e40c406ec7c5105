"""airlock.integrations.celery: LegacyTaskShim and the global intercept, on a real broker and worker."""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery, chain, group
from celery.result import AsyncResult

import airlock
from airlock.integrations.celery import LegacyTaskShim, install_global_intercept, uninstall_global_intercept
from airlock.integrations.executors.celery import LIVE_OPTIONS, celery_executor
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


def _without_id(options: Any) -> dict[str, Any]:
    """Dispatch options minus the task id every buffered call is given."""
    assert options["task_id"]
    return {name: value for name, value in options.items() if name != "task_id"}


def _deprecations(record: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in record if issubclass(w.category, DeprecationWarning) and "airlock" in str(w.message)]


# -- LegacyTaskShim -----------------------------------------------------------


@pytest.fixture
def shim_task(env: CeleryEnv) -> Any:
    key = env.results_key

    @env.app.task(name="airlock_exec.shimmed", base=LegacyTaskShim, shared=False)
    def shimmed(value: Any) -> None:
        env.results.rpush(
            key, json.dumps({"value": value, "tag": "shim", "at": 0, "queue": None, "task_id": None})
        )

    return shimmed


def test_shim_delay_is_buffered_warned_at_the_call_site_and_runs_on_a_worker(
    env: CeleryEnv, shim_task: Any
) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with airlock.scope(executor=celery_executor) as scope:
            line = _next_line()
            result = shim_task.delay(5)
            assert isinstance(result, AsyncResult)
            (intent,) = scope.intents
            assert intent.dispatch_options == {"task_id": result.id}
            assert env.queue_size(env.queue, expected=0) == 0
    (warning,) = _deprecations(record)
    assert (warning.filename, warning.lineno) == (__file__, line)
    assert "Direct call to airlock_exec.shimmed.delay()" in str(warning.message)
    assert env.queue_size(env.queue, expected=1) == 1
    with env.worker():
        (ran,) = env.wait_for_results(1)
    assert ran["value"] == 5


def test_shim_apply_async_options_become_dispatch_options(env: CeleryEnv, shim_task: Any) -> None:
    other = f"{env.queue}-other"
    with pytest.warns(DeprecationWarning) as record:
        with airlock.scope(executor=celery_executor) as scope:
            line = _next_line()
            result = shim_task.apply_async((6,), queue=other, task_id="airlock-exec-fixed-id")
            (intent,) = scope.intents
    assert result.id == "airlock-exec-fixed-id"
    assert intent.dispatch_options == {"queue": other, "task_id": "airlock-exec-fixed-id"}
    assert (record[0].filename, record[0].lineno) == (__file__, line)
    assert env.queue_size(env.queue, expected=0) == 0
    assert env.queue_size(other, expected=1) == 1


def test_shim_outside_a_scope_raises_and_sends_nothing(env: CeleryEnv, shim_task: Any) -> None:
    with pytest.warns(DeprecationWarning, match=r"Direct call to airlock_exec.shimmed.delay\(\) .*refused"):
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
            assert [_without_id(i.dispatch_options) for i in scope.intents] == [{}, {"queue": other}]
            assert env.queue_size(env.queue) == env.queue_size(other, expected=0) == 0
    assert [(w.filename, w.lineno) for w in _deprecations(record)] == [
        (__file__, delay_line),
        (__file__, apply_line),
    ]
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


def test_installing_twice_raises_and_uninstall_restores(env: CeleryEnv, intercept: None) -> None:
    install_global_intercept(env.app)
    with pytest.raises(RuntimeError, match="already called"):
        install_global_intercept(env.app)
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
    install_global_intercept()  # after uninstalling, installing again works


def test_intercept_for_one_app_also_buffers_other_apps(env: CeleryEnv, intercept: None) -> None:
    # airlock-py 0.1 documented ``app`` as unused: every app is intercepted.
    other_app = Celery("airlock_exec_other", broker="memory://", set_as_current=False)
    install_global_intercept(other_app)
    with pytest.warns(DeprecationWarning, match="Direct call to airlock_exec.record.delay"):
        with airlock.scope(executor=celery_executor) as scope:
            env.record.delay(1)
            assert len(scope.intents) == 1
            assert env.queue_size(env.queue, expected=0) == 0
    assert env.queue_size(env.queue, expected=1) == 1
    other_app.close()


def test_install_refuses_something_that_is_not_an_app(intercept: None) -> None:
    with pytest.raises(TypeError, match=r"needs a Celery app or None, got True"):
        install_global_intercept(True)  # type: ignore[arg-type]


# -- install_global_intercept: each task run in its own scope ------------------


def _define_parent(env: CeleryEnv) -> Any:
    record = env.record

    @env.app.task(name="airlock_exec.parent", bind=True, shared=False, max_retries=1)
    def parent(self: Any, mode: str) -> None:
        scope = airlock.get_current_scope()
        record.delay(f"{mode}-attempt-{self.request.retries}", tag="child")
        if mode == "ok":
            (intent,) = scope.intents if scope else [None]
            origins = f"origin={intent.origin if intent else None} scope={scope.origin if scope else None}"
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


def test_canvas_and_live_connections_in_a_scope(env: CeleryEnv, intercept: None) -> None:
    """A group is one intent; a producer handed to apply_async is never kept in it."""
    install_global_intercept()
    record = env.record
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with env.app.producer_or_acquire() as producer:
            with airlock.scope(executor=celery_executor) as scope:
                record.apply_async((1,), producer=producer)
                group(record.s(2), record.s(3)).apply_async(producer=producer)
                record.s(4).apply_async(connection=producer.connection)
                assert len(scope.intents) == 3
                assert [LIVE_OPTIONS & (i.dispatch_options or {}).keys() for i in scope.intents] == [
                    set()
                ] * 3
                assert scope.intents[1].task.name == "celery.group"
                assert env.queue_size(env.queue, expected=0) == 0
    assert env.queue_size(env.queue, expected=4) == 4  # sent at flush with connections of its own


def test_chain_of_shimmed_tasks_runs_to_the_end(env: CeleryEnv) -> None:
    """Celery sends a chain's next step itself, after the body: it is never refused or buffered."""
    key = env.results_key

    @env.app.task(name="airlock_exec.shim_step", base=LegacyTaskShim, shared=False)
    def step(value: int) -> int:
        env.results.rpush(key, json.dumps({"value": value}))
        return value + 1

    with pytest.warns(DeprecationWarning):
        with airlock.scope(executor=celery_executor):
            chain(step.s(1), step.s(), step.s()).apply_async()
    with env.worker():
        results = env.wait_for_results(3)
    assert [r["value"] for r in results] == [1, 2, 3]


# -- eager mode and custom scope classes (no broker: task_always_eager) --------


@pytest.fixture
def eager_app() -> Iterator[Celery]:
    app = Celery("airlock_eager", broker="memory://", set_as_current=False)
    app.conf.task_always_eager = True
    yield app
    app.close()


def _eager_tasks(app: Celery, ran: list[str]) -> tuple[Any, Any]:
    @app.task(name="airlock_eager.child", shared=False)
    def child(value: str) -> None:
        ran.append(value)

    @app.task(name="airlock_eager.parent", bind=True, shared=False)
    def parent(self: Any, value: str, fail: bool = False) -> None:
        scope = airlock.get_current_scope()
        ran.append(f"parent scope={type(scope).__name__} origin={scope.origin if scope else None}")
        result = child.delay(f"{value}-child")
        ran.append(f"delay returned {type(result).__name__}, child ran: {f'{value}-child' in ran}")
        if fail:
            raise ValueError("the eager run failed")

    return child, parent


def test_eager_task_dispatched_by_airlock_gets_its_own_scope(eager_app: Celery, intercept: None) -> None:
    airlock.configure(executor=celery_executor)
    install_global_intercept()
    ran: list[str] = []
    child, parent = _eager_tasks(eager_app, ran)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with airlock.scope():
            airlock.enqueue(parent, "a")
            airlock.enqueue(parent, "b", fail=True)
            assert ran == []
    assert ran == [
        "parent scope=Scope origin=airlock_eager.parent",
        "delay returned AsyncResult, child ran: False",  # intercepted, even inside airlock's own dispatch
        "a-child",  # flushed when the eager run returned
        "parent scope=Scope origin=airlock_eager.parent",
        "delay returned AsyncResult, child ran: False",  # the failed run's child is discarded
    ]


class KwargsScope(airlock.Scope):
    """airlock-py 0.1's custom-scope shape: ``__init__(self, **kwargs)``."""

    built_with: list[list[str]] = []

    def __init__(self, **kwargs: Any) -> None:
        type(self).built_with.append(sorted(kwargs))
        super().__init__(**kwargs)


class NoOriginScope(airlock.Scope):
    """An explicit signature without ``origin``."""

    def __init__(self, policy: Any = None, executor: Any = None) -> None:
        super().__init__(policy=policy, executor=executor)


@pytest.mark.parametrize("scope_cls", [KwargsScope, NoOriginScope])
def test_task_wrapper_builds_the_configured_scope_class_by_keyword(
    eager_app: Celery, intercept: None, scope_cls: type[airlock.Scope]
) -> None:
    KwargsScope.built_with.clear()
    airlock.configure(scope_cls=scope_cls, executor=celery_executor)
    install_global_intercept()
    ran: list[str] = []
    _, parent = _eager_tasks(eager_app, ran)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        parent.delay("x")  # no scope here: sent (run eagerly), and the run has its own scope
    assert ran == [
        f"parent scope={scope_cls.__name__} origin=airlock_eager.parent",
        "delay returned AsyncResult, child ran: False",
        "x-child",
    ]
    if scope_cls is KwargsScope:
        assert KwargsScope.built_with == [["executor", "origin"]] * 2  # the parent run, the child run


def test_a_run_whose_flush_fails_fails(eager_app: Celery, intercept: None) -> None:
    def broken_executor(intent: airlock.Intent) -> None:
        raise ConnectionError("broker gone")

    airlock.configure(executor=broken_executor)
    install_global_intercept()

    @eager_app.task(name="airlock_eager.sends", shared=False)
    def sends() -> str:
        airlock.enqueue(print, "never printed")
        return "body done"

    result = sends.apply()
    assert result.failed()
    assert isinstance(result.result, airlock.DispatchError)  # (a copy: Celery stores a pickleable one)
    assert [type(exc) for _, exc in result.result.failures] == [ConnectionError]


def test_a_canvas_can_be_enqueued_directly(env: CeleryEnv) -> None:
    record = env.record
    with airlock.scope(executor=celery_executor) as scope:
        intent = airlock.enqueue(
            chain(record.si("first"), record.si("second")), _dispatch_options={"countdown": 0}
        )
        assert intent.name == "chain"
        with pytest.raises(
            TypeError, match=r"cannot enqueue group: the arguments of its tasks cannot be serialized"
        ):
            airlock.enqueue(group(record.s(object())))
        assert scope.intents == [intent]
    with env.worker():
        results = env.wait_for_results(2)
    assert [r["value"] for r in results] == ["first", "second"]


def test_without_wrapping_a_run_has_no_scope_of_its_own(eager_app: Celery, intercept: None) -> None:
    airlock.configure(executor=celery_executor)
    install_global_intercept(wrap_task_execution=False)
    ran: list[str] = []
    _, parent = _eager_tasks(eager_app, ran)
    with pytest.warns(DeprecationWarning):
        parent.delay("x")
    assert ran == [
        "parent scope=NoneType origin=None",
        "x-child",  # no scope around the run: the child's .delay() was sent (run eagerly) at once
        "delay returned EagerResult, child ran: True",
    ]


def test_warnings_from_signatures_point_at_the_calling_line(env: CeleryEnv, intercept: None) -> None:
    install_global_intercept()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with airlock.scope(policy=airlock.DropAll()):
            line = _next_line()
            env.record.s(1).delay()
            chain_line = _next_line()
            chain(env.record.si(2), env.record.si(3)).delay()
    assert [(w.filename, w.lineno) for w in _deprecations(record)] == [
        (__file__, line),
        (__file__, chain_line),
    ]
