"""SPEC §2.3: @airlock.scoped on plain and async functions, with and without parentheses."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import airlock
from core_helpers import Recorder

rec = Recorder()


@pytest.fixture(autouse=True)
def _clear() -> None:
    rec.calls.clear()


def test_bare_decorator_sync() -> None:
    seen: list[Any] = []

    @airlock.scoped
    def work(x: int) -> int:
        seen.append(airlock.get_current_scope())
        before = list(rec.calls)
        airlock.enqueue(rec.task("t"), x)
        assert rec.calls == before  # buffered, not run
        return x * 2

    assert work(3) == 6
    assert work(4) == 8
    assert rec.calls == [("t", (3,), {}), ("t", (4,), {})]
    assert seen[0] is not seen[1]  # a fresh scope per call
    assert all(s.is_flushed for s in seen)
    assert work.__name__ == "work"  # functools.wraps


def test_parenthesized_decorator_sync() -> None:
    @airlock.scoped()
    def work() -> None:
        airlock.enqueue(rec.task("t"))

    work()
    assert rec.names == ["t"]


def test_policy_positional_and_keyword() -> None:
    @airlock.scoped(airlock.DropAll())
    def positional() -> None:
        airlock.enqueue(rec.task("t"))

    @airlock.scoped(policy=airlock.BlockTasks({"t"}))
    def keyword() -> None:
        airlock.enqueue(rec.task("t"))
        airlock.enqueue(rec.task("u"))

    positional()
    keyword()
    assert rec.names == ["u"]


def test_cls_and_scope_kwargs() -> None:
    class Tagged(airlock.Scope):
        def __init__(self, policy: Any = None, *, tag: str = "", **kw: Any) -> None:
            super().__init__(policy, **kw)
            self.tag = tag

    @airlock.scoped(_cls=Tagged, tag="cmd", origin="manage.py")
    def command() -> Any:
        current = airlock.get_current_scope()
        assert isinstance(current, Tagged)
        return current.tag, airlock.enqueue(rec.task("t")).origin

    assert command() == ("cmd", "manage.py")


def test_configured_defaults_apply_per_call() -> None:
    @airlock.scoped
    def work() -> Any:
        airlock.enqueue(rec.task("t"))
        return airlock.get_current_scope()

    airlock.configure(policy=airlock.DropAll())
    assert isinstance(work().policy, airlock.DropAll)
    airlock.reset_configuration()
    work()
    assert rec.names == ["t"]  # read at call time, not at decoration time


def test_exception_discards_and_propagates() -> None:
    @airlock.scoped
    def fails() -> None:
        airlock.enqueue(rec.task("t"))
        raise LookupError("nope")

    with pytest.raises(LookupError, match="nope"):
        fails()
    assert rec.calls == []


def test_nested_in_an_outer_scope_is_captured() -> None:
    @airlock.scoped
    def work() -> None:
        airlock.enqueue(rec.task("t"))

    with airlock.scope(airlock.DropAll()) as outer:
        work()
    assert rec.calls == [] and [i.name for i in outer.captured_intents] == ["t"]


def test_bare_decorator_async() -> None:
    @airlock.scoped
    async def work(x: int) -> int:
        airlock.enqueue(rec.task("t"), x)
        await asyncio.sleep(0)
        assert rec.calls == []
        return x + 1

    assert asyncio.iscoroutinefunction(work)
    assert asyncio.run(work(1)) == 2
    assert rec.calls == [("t", (1,), {})]


def test_parenthesized_decorator_async_accepts_coroutine_tasks() -> None:
    done: list[int] = []

    async def notify(x: int) -> None:
        await asyncio.sleep(0)
        done.append(x)

    @airlock.scoped(policy=airlock.AllowAll())
    async def work() -> None:
        airlock.enqueue(notify, 7)

    asyncio.run(work())
    assert done == [7]


def test_async_exception_discards() -> None:
    @airlock.scoped()
    async def fails() -> None:
        airlock.enqueue(rec.task("t"))
        raise LookupError

    with pytest.raises(LookupError):
        asyncio.run(fails())
    assert rec.calls == []


def test_decorating_a_non_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="decorates a function"):
        airlock.scoped()(42)  # type: ignore[call-overload]


def test_two_positional_arguments_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="at most one positional"):
        airlock.scoped(airlock.DropAll(), airlock.AllowAll())  # type: ignore[call-overload]


def test_callable_policy_is_taken_as_policy_not_as_function() -> None:
    class CallablePolicy(airlock.DropAll):
        def __call__(self) -> None:  # pragma: no cover - must never be called
            raise AssertionError("treated as the decorated function")

    @airlock.scoped(CallablePolicy())
    def work() -> None:
        airlock.enqueue(rec.task("t"))

    work()
    assert rec.calls == []


def test_policy_given_twice_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="both"):
        airlock.scoped(airlock.DropAll(), policy=airlock.AllowAll())  # type: ignore[call-overload]


def test_policy_class_is_a_type_error_at_decoration() -> None:
    with pytest.raises(TypeError, match=r"DropAll\(\)"):
        airlock.scoped(airlock.DropAll)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="policy"):
        airlock.scoped(policy=object())  # type: ignore[call-overload]
