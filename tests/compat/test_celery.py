"""Celery code written for airlock-py 0.1.0a2 runs unchanged (SPEC 5.3).

Each test is written the way the original's documentation shows the Celery
integration being used. The apps here run eagerly (``task_always_eager``) or
on the in-memory transport, so every example is self-contained; the same
behaviour in a real ``celery worker`` process on Redis and RabbitMQ is pinned
by ``tests/integrations/test_celery_worker.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from celery import Celery, Task
from celery.local import Proxy
from celery.result import AsyncResult

import airlock
from airlock.integrations.celery import LegacyTaskShim, install_global_intercept, uninstall_global_intercept
from airlock.integrations.executors.celery import celery_executor


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("shop", broker="memory://", set_as_current=False)
    app.conf.task_always_eager = True
    yield app
    app.close()


@pytest.fixture
def intercept() -> Iterator[None]:
    try:
        yield
    finally:
        uninstall_global_intercept()


# -- install_global_intercept ---------------------------------------------------


def test_installing_the_intercept_twice_is_an_error(app: Celery, intercept: None) -> None:
    install_global_intercept(app)
    with pytest.raises(RuntimeError):
        install_global_intercept(app)


def test_the_app_argument_does_not_limit_interception(intercept: None) -> None:
    app1 = Celery("app1", broker="memory://", set_as_current=False)
    app2 = Celery("app2", broker="memory://", set_as_current=False)
    app2.conf.task_always_eager = True
    sent = []

    @app2.task(name="app2.ping")
    def ping() -> None:
        sent.append("ping")

    install_global_intercept(app1)
    airlock.configure(executor=celery_executor)
    with pytest.warns(DeprecationWarning, match=r"Direct call to app2\.ping\.delay"):
        with airlock.scope() as scope:
            ping.delay()
            assert len(scope.intents) == 1
            assert sent == []
    assert sent == ["ping"]


def test_warnings_name_the_task_and_the_method(app: Celery, intercept: None) -> None:
    @app.task(name="shop.send_receipt")
    def send_receipt(order_id: int) -> None:
        pass

    install_global_intercept()
    with pytest.warns(DeprecationWarning, match=r"Direct call to shop\.send_receipt\.delay"):
        with airlock.scope(policy=airlock.DropAll()):
            send_receipt.delay(1)
    with pytest.warns(DeprecationWarning, match=r"Direct call to shop\.send_receipt\.apply_async"):
        with airlock.scope(policy=airlock.DropAll()):
            send_receipt.apply_async((1,), countdown=10)


def test_legacy_task_shim_warns_the_same_way(app: Celery) -> None:
    @app.task(name="shop.legacy", base=LegacyTaskShim)
    def legacy(order_id: int) -> None:
        pass

    with pytest.warns(DeprecationWarning, match=r"Direct call to shop\.legacy\.delay"):
        with airlock.scope(policy=airlock.DropAll()):
            legacy.delay(1)
    with pytest.warns(DeprecationWarning, match=r"Direct call to shop\.legacy\.apply_async"):
        with airlock.scope(policy=airlock.DropAll()):
            legacy.apply_async((1,))


def test_each_task_run_gets_the_configured_custom_scope(app: Celery, intercept: None) -> None:
    class AuditedScope(airlock.Scope):
        runs: list[str | None] = []

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)

        def flush(self) -> list[airlock.Intent]:
            type(self).runs.append(self.origin)
            return super().flush()

    airlock.configure(scope_cls=AuditedScope)
    install_global_intercept(app, wrap_task_execution=True)

    @app.task(name="shop.checkout")
    def checkout(order_id: int) -> None:
        airlock.enqueue(print, "checked out", order_id)

    with pytest.warns(DeprecationWarning, match="right away"):
        checkout.delay(7)  # no scope here: sent (run eagerly); the run gets its own scope
    assert AuditedScope.runs == ["shop.checkout"]


# -- the deliberate difference: a buffered .delay() has a usable result ----------


def test_buffered_delay_returns_an_async_result_with_the_id_it_will_be_sent_with(
    app: Celery, intercept: None
) -> None:
    @app.task(name="shop.ship")
    def ship(order_id: int) -> None:
        pass

    install_global_intercept()
    with pytest.warns(DeprecationWarning), airlock.scope(policy=airlock.DropAll()) as scope:
        result = ship.delay(42)
        assert isinstance(result, AsyncResult)  # airlock-py 0.1 returned None here
        (intent,) = scope.intents
        assert intent.dispatch_options == {"task_id": result.id}


# -- the Celery executor ----------------------------------------------------------


def test_the_celery_executor_is_an_executor() -> None:
    assert isinstance(celery_executor, airlock.Executor)


def test_dispatch_options_are_ignored_for_a_plain_callable() -> None:
    calls = []

    def send_sms(number: str) -> None:
        calls.append(number)

    with airlock.scope(executor=celery_executor):
        airlock.enqueue(send_sms, "555-0100", _dispatch_options={"countdown": 60})
    assert calls == ["555-0100"]


def test_dispatch_options_reach_apply_async_untouched(app: Celery) -> None:
    @app.task(name="shop.charge")
    def charge(order_id: int) -> None:
        pass

    options = {"max_retries": 0, "priority": 5, "headers": {"tenant": "acme"}, "queue": "payments"}
    with mock.patch.object(charge.__class__, "apply_async") as apply_async:
        with airlock.scope(executor=celery_executor):
            airlock.enqueue(charge, 7, _dispatch_options=options)
    apply_async.assert_called_once_with(args=(7,), kwargs={}, **options)


@pytest.mark.filterwarnings(
    "ignore::celery.exceptions.CDeprecationWarning"
)  # Mock(spec=Task) reads every attribute
def test_a_task_test_double_is_dispatched_like_a_task() -> None:
    task = mock.Mock(spec=Task)
    task.name = "shop.notify"
    with airlock.scope(executor=celery_executor):
        airlock.enqueue(task, 1, _dispatch_options={"countdown": 5}, channel="email")
    task.apply_async.assert_called_once_with(args=(1,), kwargs={"channel": "email"}, countdown=5)
    task.assert_not_called()  # never called in-process


def test_a_task_subclass_and_a_proxy_are_dispatched_like_a_task(app: Celery) -> None:
    class BaseWithAudit(Task):  # type: ignore[misc]
        pass

    @app.task(name="shop.audited", base=BaseWithAudit)
    def audited(value: int) -> None:
        pass

    proxy = Proxy(lambda: audited)
    with mock.patch.object(BaseWithAudit, "apply_async") as apply_async:
        with airlock.scope(executor=celery_executor):
            airlock.enqueue(audited, 1)
            airlock.enqueue(proxy, 2)
    assert [c.kwargs["args"] for c in apply_async.call_args_list] == [(1,), (2,)]
