"""Executors, used the way airlock-py 0.1's documentation uses them.

Each test reads like a documentation example: configure an executor by its
documented import path, enqueue, and see what the backend received. The
brokers here are the backends' own in-memory ones (Dramatiq's ``StubBroker``,
Huey's ``MemoryHuey``); tests/integrations/executors/ runs the same executors
against real Redis brokers and workers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any
from unittest.mock import Mock

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from huey import MemoryHuey
from huey.api import TaskWrapper

import airlock

EXECUTORS = ["sync", "dramatiq", "huey", "django_q", "django_tasks", "rq"]


def executor(name: str) -> Callable[[airlock.Intent], Any]:
    module = importlib.import_module(f"airlock.integrations.executors.{name}")
    found: Callable[[airlock.Intent], Any] = getattr(module, f"{name}_executor")
    return found


@pytest.mark.parametrize("name", EXECUTORS)
def test_every_executor_lives_at_its_documented_path(name: str) -> None:
    run = executor(name)
    assert callable(run)
    airlock.configure(executor=run)
    assert airlock.get_configuration()["executor"] is run


emails: list[tuple[Any, ...]] = []


def send_email(*args: Any, **kwargs: Any) -> None:
    emails.append((args, kwargs))


@pytest.mark.parametrize("name", ["sync", "dramatiq", "huey", "django_tasks"])
def test_plain_callable_is_called_in_process_and_its_dispatch_options_ignored(name: str) -> None:
    emails.clear()
    airlock.configure(executor=executor(name))
    with airlock.scope():
        airlock.enqueue(send_email, 42, to="ada", _dispatch_options={"countdown": 60, "queue": "mail"})
        assert emails == []
    assert emails == [((42,), {"to": "ada"})]


def test_dramatiq_actor_and_its_subclass_are_sent() -> None:
    from airlock.integrations.executors.dramatiq import dramatiq_executor

    broker = StubBroker()
    broker.emit_after("process_boot")

    class TracedActor(dramatiq.Actor):  # type: ignore[type-arg]
        """What an instrumentation library's actor class looks like."""

    @dramatiq.actor(broker=broker, queue_name="mail")
    def notify(order_id: int) -> None:
        return None

    traced = dramatiq.actor(
        notify.fn, broker=broker, actor_class=TracedActor, actor_name="traced", queue_name="mail"
    )
    airlock.configure(executor=dramatiq_executor)
    with airlock.scope():
        airlock.enqueue(notify, 1)
        airlock.enqueue(traced, 2, _dispatch_options={"max_retries": 0})
        assert broker.queues["mail"].qsize() == 0
    assert broker.queues["mail"].qsize() == 2
    broker.close()


def test_test_doubles_of_backend_tasks_receive_what_the_task_would() -> None:
    from airlock.integrations.executors.dramatiq import dramatiq_executor
    from airlock.integrations.executors.huey import huey_executor

    actor = Mock(spec=dramatiq.Actor)
    with airlock.scope(executor=dramatiq_executor):
        airlock.enqueue(actor, 1, _name="notify", _dispatch_options={"delay": 1000})
    actor.send_with_options.assert_called_once_with(args=(1,), kwargs={}, delay=1000)

    task = Mock(spec=TaskWrapper)
    with airlock.scope(executor=huey_executor):
        airlock.enqueue(task, 2, _name="notify", _dispatch_options={"delay": 60, "retries": 1})
    task.schedule.assert_called_once_with(args=(2,), kwargs={}, delay=60, retries=1)


def test_huey_task_is_enqueued_with_its_options() -> None:
    from airlock.integrations.executors.huey import huey_executor

    huey = MemoryHuey("compat", immediate=False)

    @huey.task()
    def rebuild_cache(section: str) -> None:
        return None

    airlock.configure(executor=huey_executor)
    with airlock.scope():
        airlock.enqueue(rebuild_cache, "menu")
        airlock.enqueue(rebuild_cache, "footer", _dispatch_options={"delay": 3600})
        assert huey.pending_count() == 0
    first, second = huey.pending()
    assert (first.args, first.eta) == (("menu",), None)
    assert second.args == ("footer",) and second.eta is not None


def test_option_names_are_the_backends_business() -> None:
    # Dispatch options go to the backend untouched: airlock refuses only what
    # the backend could never send, never a name because it is not on a list.
    from airlock.integrations.executors.dramatiq import dramatiq_executor

    actor = Mock(spec=dramatiq.Actor)
    with airlock.scope(executor=dramatiq_executor):
        airlock.enqueue(actor, 1, _name="notify", _dispatch_options={"my_middleware_option": "on"})
    actor.send_with_options.assert_called_once_with(args=(1,), kwargs={}, my_middleware_option="on")


# -- custom executors, as the original's guide writes them --


def test_a_custom_executor_is_a_function_taking_an_intent() -> None:
    seen: list[str] = []

    def logging_executor(intent: airlock.Intent) -> None:
        seen.append(str(intent))
        airlock._execute(intent)  # the default executor: run it in-process

    emails.clear()
    airlock.configure(executor=logging_executor)
    with airlock.scope():
        airlock.enqueue(send_email, 7)
    assert seen == ["send_email(7)"]
    assert emails == [((7,), {})]


def test_a_custom_executor_class_is_an_executor() -> None:
    class RecordingExecutor:
        def __init__(self) -> None:
            self.intents: list[airlock.Intent] = []

        def __call__(self, intent: airlock.Intent) -> None:
            self.intents.append(intent)

    recording = RecordingExecutor()
    assert isinstance(recording, airlock.Executor)
    with airlock.scope(executor=recording):
        airlock.enqueue(send_email, 8)
    assert [intent.name for intent in recording.intents] == ["send_email"]


@pytest.mark.parametrize("name", EXECUTORS)
def test_every_built_in_executor_is_an_executor(name: str) -> None:
    assert isinstance(executor(name), airlock.Executor)
