"""SPEC §5.2: interrupts, retention, bad input at the line, and the remaining lifecycle rules."""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import pickle
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import airlock
from airlock import _dispatch
from core_helpers import Recorder

# -- interrupts during a flush ----------------------------------------------------


def _undispatched(caplog: Any) -> list[list[str]]:
    return [
        [i.name for i in r.airlock_undispatched]
        for r in caplog.records
        if r.name == "airlock" and r.levelno == logging.ERROR and hasattr(r, "airlock_undispatched")
    ]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_during_dispatch_propagates_and_names_what_was_left(
    interrupt: type, caplog: Any
) -> None:
    rec = Recorder()
    with pytest.raises(interrupt) as info:
        with airlock.scope():
            airlock.enqueue(rec.task("a"))
            airlock.enqueue(rec.failing("b", interrupt()))
            airlock.enqueue(rec.task("c"))
            airlock.enqueue(rec.task("d"))
    assert rec.names == ["a", "b"]
    assert _undispatched(caplog) == [["b", "c", "d"]]
    [note] = info.value.__notes__
    assert "b()" in note and "c()" in note and "d()" in note and "not dispatched" in note


def test_a_cancelled_async_flush_propagates_and_names_what_was_left(caplog: Any) -> None:
    rec = Recorder()

    async def slow() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        async with airlock.scope():
            airlock.enqueue(rec.task("a"))
            airlock.enqueue(slow)
            airlock.enqueue(rec.task("c"))

    async def runner() -> BaseException:
        task = asyncio.ensure_future(main())
        await asyncio.sleep(0.05)  # inside the dispatch of ``slow`` now
        task.cancel()
        try:
            await task
        except asyncio.CancelledError as exc:
            return exc
        raise AssertionError("not cancelled")

    exc = asyncio.run(runner())
    assert rec.names == ["a"]
    assert _undispatched(caplog) == [["slow", "c"]]
    assert any("slow()" in n and "c()" in n for n in exc.__notes__)


def test_failures_before_an_interrupt_are_still_reported(caplog: Any) -> None:
    rec = Recorder()
    with pytest.raises(KeyboardInterrupt):
        with airlock.scope():
            airlock.enqueue(rec.failing("bad", ValueError("boom")))
            airlock.enqueue(rec.failing("stop", KeyboardInterrupt()))
    failed = [r for r in caplog.records if getattr(r, "airlock_intent", None) is not None]
    assert [r.airlock_intent.name for r in failed] == ["bad"]


def test_an_interrupt_while_policies_judge_names_every_intent(caplog: Any) -> None:
    class Interrupting(airlock.Policy):
        def allows(self, intent: airlock.Intent) -> bool:
            raise KeyboardInterrupt

    rec = Recorder()
    with pytest.raises(KeyboardInterrupt) as info:
        with airlock.scope(Interrupting()):
            airlock.enqueue(rec.task("a"))
            airlock.enqueue(rec.task("b"))
    assert rec.calls == []
    assert _undispatched(caplog) == [["a", "b"]]
    assert info.value.__notes__


# -- async with honours a subclass that overrides only _dispatch_all -----------------


def test_async_with_defers_through_an_overridden_dispatch_all() -> None:
    pending: list[list[airlock.Intent]] = []

    class Deferred(airlock.Scope):
        def _dispatch_all(self, intents: list[airlock.Intent]) -> None:
            pending.append(intents)

    rec = Recorder()

    async def main() -> None:
        async with Deferred():
            airlock.enqueue(rec.task("a"))
        with Deferred():
            airlock.enqueue(rec.task("b"))

    asyncio.run(main())
    assert rec.calls == [] and [[i.name for i in batch] for batch in pending] == [["a"], ["b"]]


def test_async_with_of_a_sync_deferring_subclass_refuses_coroutine_tasks() -> None:
    # Its _dispatch_all dispatches synchronously when it is time: a coroutine
    # task would end up dispatched by a sync loop, so it is refused at enqueue.
    class Deferred(airlock.Scope):
        def _dispatch_all(self, intents: list[airlock.Intent]) -> None:
            super()._dispatch_all(intents)

    async def job() -> None: ...

    async def main() -> None:
        async with Deferred():
            with pytest.raises(airlock.UsageError, match="coroutine"):
                airlock.enqueue(job)

    asyncio.run(main())


# -- nothing kept alive, every cache bounded -----------------------------------------------


def test_nothing_keeps_tasks_policies_executors_or_arguments_alive_after_the_scope() -> None:
    class Task:
        def __call__(self, *args: Any) -> None:
            pass

    class Arg:
        pass

    class Policy(airlock.Policy):
        pass

    def run_once() -> list[weakref.ref[Any]]:
        task, arg, policy = Task(), Arg(), Policy()
        executed: list[int] = []

        def executor(intent: airlock.Intent) -> None:
            executed.append(1)

        with airlock.scope(policy, executor=executor):
            airlock.enqueue(task, arg)
            with airlock.scope():
                airlock.enqueue(task, arg)
        with airlock.scope(policy):
            airlock.enqueue(task, arg)  # the default executor, in-process
        assert executed == [1, 1]
        return [weakref.ref(o) for o in (task, arg, policy, executor)]

    refs = run_once()
    gc.collect()
    assert [r() for r in refs] == [None, None, None, None]


def test_the_in_process_warning_memory_is_bounded_and_holds_no_tasks(monkeypatch: Any) -> None:
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.setattr(_dispatch, "_warned", set())

    class QueueTask:
        def __init__(self, n: int) -> None:
            self.name = f"app.tasks.t{n}"

        def __call__(self) -> None:
            pass

        def apply_async(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("not sent: the in-process executor calls it")

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for n in range(_dispatch._WARNED_MAX + 50):
            with airlock.scope():
                airlock.enqueue(QueueTask(n))
    assert len(_dispatch._warned) == _dispatch._WARNED_MAX
    assert all(isinstance(key, str) for key in _dispatch._warned)
    assert len([w for w in seen if issubclass(w.category, RuntimeWarning)]) == _dispatch._WARNED_MAX


# -- the in-process executor warns about task-queue tasks, once, outside tests -----------


class CeleryLike:
    name = "shop.tasks.send_receipt"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: Any) -> None:
        self.calls += 1

    def apply_async(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the in-process executor calls the task")


def test_running_a_queue_task_in_process_warns_once_per_task(monkeypatch: Any) -> None:
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.setattr(_dispatch, "_warned", set())
    task = CeleryLike()
    with pytest.warns(RuntimeWarning, match="ran send_receipt in-process") as seen:
        for _ in range(3):
            with airlock.scope():
                airlock.enqueue(task, 1)
    assert len(seen) == 1 and task.calls == 3


def test_no_in_process_warning_while_a_test_runs() -> None:
    task = CeleryLike()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with airlock.scope():
            airlock.enqueue(task, 1)
    assert task.calls == 1


def test_executors_are_executor_instances() -> None:
    from airlock.integrations.executors.sync import sync_executor

    assert sync_executor is airlock._execute
    assert isinstance(airlock._execute, airlock.Executor)
    assert isinstance(lambda intent: None, airlock.Executor)
    assert not isinstance(object(), airlock.Executor)


# -- bad input, at the line that made it --------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"_name": 42}, "_name must be a str"),
        ({"_origin": b"cli"}, "_origin must be a str"),
        ({"_dispatch_options": [("queue", "q")]}, "_dispatch_options must be a mapping"),
        ({"_dispatch_options": {1: "q"}}, "keys must be str"),
    ],
)
def test_bad_enqueue_options_are_type_errors_at_the_enqueue(kwargs: dict[str, Any], match: str) -> None:
    with airlock.scope() as s:
        with pytest.raises(TypeError, match=match):
            airlock.enqueue(print, **kwargs)
    assert s.intents == []


@pytest.mark.parametrize("bad", [object(), "DropAll", airlock.DropAll, 42])
def test_scope_with_something_that_is_not_a_policy_is_a_type_error(bad: Any) -> None:
    with pytest.raises(TypeError, match="policy"):
        airlock.scope(policy=bad)
    with pytest.raises(TypeError, match="policy"):
        airlock.scope(bad)


def test_local_policy_given_a_class_is_a_type_error_naming_the_fix() -> None:
    with pytest.raises(TypeError, match=r"write DropAll\(\)"):
        airlock.policy(airlock.DropAll)  # type: ignore[arg-type]


def test_configured_scope_kwargs_are_checked_against_the_scope_class() -> None:
    class Narrow(airlock.Scope):
        def __init__(self, policy: Any = None, executor: Any = None) -> None:
            super().__init__(policy, executor)

    with pytest.raises(TypeError, match="does not fit Scope"):
        airlock.configure(scope_kwargs={"colour": "red"})
    with pytest.raises(TypeError, match="does not fit Narrow"):
        airlock.configure(scope_cls=Narrow, scope_kwargs={"origin": "x"})
    airlock.configure(scope_kwargs={"origin": "x"})
    with pytest.raises(TypeError, match="does not fit Narrow"):
        airlock.configure(scope_cls=Narrow)  # the kwargs in force do not fit the new class
    assert airlock.get_configuration()["scope_cls"] is None


def test_scoped_over_classmethod_or_staticmethod_objects_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="below @classmethod"):

        class A:
            @airlock.scoped
            @classmethod
            def build(cls) -> None: ...

    with pytest.raises(TypeError, match="below @staticmethod"):

        class B:
            @airlock.scoped()
            @staticmethod
            def build() -> None: ...

    class C:  # the right order works
        @classmethod
        @airlock.scoped
        def build(cls) -> airlock.Scope | None:
            return airlock.get_current_scope()

    assert isinstance(C.build(), airlock.Scope)


def test_scoped_refuses_generator_functions_at_decoration() -> None:
    with pytest.raises(TypeError, match="generator"):

        @airlock.scoped
        def rows() -> Iterator[int]:
            yield 1

    with pytest.raises(TypeError, match="generator"):

        @airlock.scoped()
        async def arows() -> Any:
            yield 1


def test_dispatch_error_pickles_and_copies() -> None:
    intent = airlock.Intent(print, (1,), {"sep": "-"}, name="p", dispatch_options={"queue": "q"})
    error = airlock.DispatchError("1 intent(s) failed to dispatch: p", [(intent, ValueError("boom"))])
    error.add_note("a note")
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert type(clone) is airlock.DispatchError and str(clone) == str(error)
        [(i, exc)] = clone.failures
        assert (
            i.name == "p"
            and i.args == (1,)
            and i.kwargs == {"sep": "-"}
            and i.dispatch_options == {"queue": "q"}
        )
        assert type(exc) is ValueError and exc.args == ("boom",)
        assert [type(e) for e in clone.exceptions] == [ValueError]
        assert clone.__notes__ == ["a note"]


def test_before_descendant_flushes_may_return_a_list_subclass() -> None:
    class Intents(list[airlock.Intent]):
        pass

    class LetAllThrough(airlock.Scope):
        def before_descendant_flushes(
            self, exiting_scope: airlock.Scope, intents: list[airlock.Intent]
        ) -> list[airlock.Intent]:
            return Intents(intents)

    rec = Recorder()
    with LetAllThrough():
        with airlock.scope():
            airlock.enqueue(rec.task("x"))
        assert rec.names == ["x"]


def test_a_raising_should_flush_leaves_the_scope_discarded_and_propagates() -> None:
    class Broken(airlock.Scope):
        def should_flush(self, error: BaseException | None) -> bool:
            raise LookupError("cannot decide")

    rec = Recorder()
    with pytest.raises(LookupError, match="cannot decide"):
        with Broken() as s:
            airlock.enqueue(rec.task("x"))
    assert s.is_discarded and rec.calls == []
    assert airlock.get_current_scope() is None


def test_should_flush_set_on_the_instance_decides() -> None:
    seen: list[int] = []
    s = airlock.Scope()
    s.should_flush = lambda error: False  # type: ignore[method-assign]
    with s:
        airlock.enqueue(seen.append, 1)
    assert s.is_discarded
    assert seen == []


def test_dispatch_one_set_on_the_instance_runs_each_intent() -> None:
    # The inline dispatch path is taken only when self._dispatch_one is the
    # default hook bound to this very scope: an instance override, or the
    # default hook of ANOTHER scope (with its own executor), must be used.
    ran: list[object] = []
    s = airlock.Scope()
    s._dispatch_one = lambda intent: ran.append(("hook", intent.args))  # type: ignore[method-assign]
    with s:
        airlock.enqueue(ran.append, 1)
    assert ran == [("hook", (1,))]

    other = airlock.Scope(executor=lambda intent: ran.append(("other", intent.args)))
    t = airlock.Scope()
    t._dispatch_one = other._dispatch_one  # type: ignore[method-assign]
    with t:
        airlock.enqueue(ran.append, 2)
    assert ran == [("hook", (1,)), ("other", (2,))]
