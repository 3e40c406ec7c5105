"""SPEC §2.7 async: coroutine tasks, awaitable executors, and the sync-scope guard."""

from __future__ import annotations

import asyncio
import functools
import gc
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import airlock
from core_helpers import Recorder


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro_fn())  # type: ignore[arg-type]


class Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def sync(self, name: str) -> Callable[[], None]:
        def task() -> None:
            self.events.append(name)

        task.__name__ = name
        return task

    def coro(self, name: str, hops: int = 3) -> Callable[[], Awaitable[None]]:
        async def task() -> None:
            self.events.append(f"{name} start")
            for _ in range(hops):
                await asyncio.sleep(0)
            self.events.append(f"{name} end")

        task.__name__ = name
        return task


def test_coroutine_tasks_awaited_in_fifo_order_mixed_with_sync() -> None:
    log = Log()

    async def main() -> None:
        async with airlock.scope():
            airlock.enqueue(log.coro("a"))
            airlock.enqueue(log.sync("b"))
            airlock.enqueue(log.coro("c", hops=1))
            airlock.enqueue(log.sync("d"))
            assert log.events == []

    run(main)
    # each coroutine finishes before the next intent starts
    assert log.events == ["a start", "a end", "b", "c start", "c end", "d"]


def test_coroutine_task_kinds_are_recognised() -> None:
    log = Log()

    class Service:
        async def method(self, x: int) -> None:
            log.events.append(f"method {x}")

    class AsyncCallable:
        async def __call__(self, x: int) -> None:
            log.events.append(f"callable {x}")

    async def plain(x: int) -> None:
        log.events.append(f"plain {x}")

    async def main() -> None:
        async with airlock.scope():
            airlock.enqueue(Service().method, 1)
            airlock.enqueue(AsyncCallable(), 2)
            airlock.enqueue(functools.partial(plain, 3))

    run(main)
    assert log.events == ["method 1", "callable 2", "plain 3"]


@pytest.mark.parametrize("kind", ["function", "method", "callable-object", "partial"])
def test_coroutine_task_in_a_sync_scope_is_a_usage_error_at_enqueue(kind: str) -> None:
    async def notify() -> None:  # pragma: no cover - never runs
        pass

    class Service:
        async def notify(self) -> None:  # pragma: no cover - never runs
            pass

    class AsyncCallable:
        async def __call__(self) -> None:  # pragma: no cover - never runs
            pass

    task: Any = {
        "function": notify,
        "method": Service().notify,
        "callable-object": AsyncCallable(),
        "partial": functools.partial(notify),
    }[kind]
    rec = Recorder()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with airlock.scope() as s:
            airlock.enqueue(rec.task("before"))
            with pytest.raises(airlock.UsageError) as info:
                airlock.enqueue(task)
            airlock.enqueue(rec.task("after"))
        gc.collect()
    assert "coroutine" in str(info.value) and "async with airlock.scope()" in str(info.value)
    assert [i.name for i in s.intents] == ["before", "after"]  # nothing else lost
    assert rec.names == ["before", "after"]
    assert [w for w in seen if issubclass(w.category, RuntimeWarning)] == []


def test_sync_scope_nested_in_an_async_scope_accepts_coroutine_tasks_for_its_parent() -> None:
    # Decision (lead, core): a plain `with airlock.scope()` inside an async
    # scope hands its intents to that async scope, which can await them.
    log = Log()

    async def main() -> None:
        async with airlock.scope() as outer:
            with airlock.scope():
                airlock.enqueue(log.coro("x"))
                airlock.enqueue(log.sync("y"))
            assert [i.name for i in outer.captured_intents] == ["x", "y"]
            assert log.events == []

    run(main)
    assert log.events == ["x start", "x end", "y"]


def test_sync_scope_under_an_async_scope_that_may_let_intents_through_refuses_coroutines() -> None:
    # SPEC §5.2: if an ancestor may let intents through, the sync scope could
    # end up running the coroutine itself: refused at the enqueue line.
    log = Log()

    class LetThrough(airlock.Scope):
        def before_descendant_flushes(
            self, exiting_scope: airlock.Scope, intents: list[airlock.Intent]
        ) -> list[airlock.Intent]:
            return intents

    async def main() -> None:
        async with LetThrough():
            with airlock.scope():
                with pytest.raises(airlock.UsageError, match="coroutine"):
                    airlock.enqueue(log.coro("x"))
                airlock.enqueue(log.sync("y"))

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run(main)
        gc.collect()
    assert log.events == ["y"]
    assert [w for w in seen if issubclass(w.category, RuntimeWarning)] == []


def test_nested_async_scopes_capture_and_the_outer_awaits() -> None:
    log = Log()

    async def main() -> None:
        async with airlock.scope() as outer:
            airlock.enqueue(log.coro("o1", hops=1))
            async with airlock.scope():
                airlock.enqueue(log.coro("i1", hops=1))
                airlock.enqueue(log.sync("i2"))
            assert log.events == []
            assert [i.name for i in outer.captured_intents] == ["i1", "i2"]

    run(main)
    assert log.events == ["o1 start", "o1 end", "i1 start", "i1 end", "i2"]


def test_async_scope_under_a_sync_scope_refuses_coroutines_at_enqueue() -> None:
    # SPEC §5.2: the sync outer scope would capture and have to run it.
    log = Log()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with airlock.scope():

            async def handler() -> None:
                async with airlock.scope():
                    with pytest.raises(airlock.UsageError, match="coroutine"):
                        airlock.enqueue(log.coro("c"))
                    airlock.enqueue(log.sync("s"))

            asyncio.run(handler())
        gc.collect()
    assert log.events == ["s"]
    assert [w for w in seen if issubclass(w.category, RuntimeWarning)] == []


def test_sync_flush_of_an_awaitable_is_reported_not_lost() -> None:
    # An executor returning awaitables under a plain flush(): a failure that
    # names the intent (and the awaitable is closed, never "never awaited").
    async def later() -> None: ...

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(airlock.DispatchError) as info:
            with airlock.Scope(executor=lambda intent: later()):
                airlock.enqueue(print, _name="p")
        gc.collect()
    [(intent, exc)] = info.value.failures
    assert intent.name == "p" and isinstance(exc, airlock.UsageError)
    assert [w for w in seen if issubclass(w.category, RuntimeWarning)] == []


def test_async_executor_returning_awaitables_is_awaited_in_order() -> None:
    log = Log()

    async def executor(intent: airlock.Intent) -> None:
        log.events.append(f"{intent.name} sending")
        await asyncio.sleep(0)
        log.events.append(f"{intent.name} sent")

    async def main() -> None:
        async with airlock.Scope(executor=executor):
            airlock.enqueue(print, _name="a")
            airlock.enqueue(print, _name="b")

    run(main)
    assert log.events == ["a sending", "a sent", "b sending", "b sent"]


def test_async_failures_do_not_cancel_the_rest() -> None:
    log = Log()

    async def broken() -> None:
        log.events.append("broken")
        raise ConnectionError("down")

    async def main() -> None:
        async with airlock.scope():
            airlock.enqueue(log.coro("a", hops=1))
            airlock.enqueue(broken)
            airlock.enqueue(log.sync("b"))
            airlock.enqueue(log.coro("c", hops=1))

    with pytest.raises(airlock.DispatchError) as info:
        run(main)
    assert log.events == ["a start", "a end", "broken", "b", "c start", "c end"]
    [(intent, exc)] = info.value.failures
    assert intent.name == "broken" and isinstance(exc, ConnectionError)


def test_async_with_discards_on_error() -> None:
    log = Log()

    async def main() -> None:
        async with airlock.scope():
            airlock.enqueue(log.coro("a"))
            raise KeyError

    with pytest.raises(KeyError):
        run(main)
    assert log.events == []


def test_imperative_async_lifecycle() -> None:
    log = Log()

    async def main() -> list[airlock.Intent]:
        s = airlock.Scope()
        assert await s.aenter() is s
        intent = airlock.enqueue(log.coro("a", hops=1))
        s.exit()
        assert log.events == []
        flushed = await s.aflush()
        assert flushed == [intent] and s.is_flushed
        return flushed

    assert len(run(main)) == 1
    assert log.events == ["a start", "a end"]


def test_aflush_of_an_empty_scope() -> None:
    async def main() -> list[airlock.Intent]:
        s = airlock.Scope()
        await s.aenter()
        s.exit()
        return await s.aflush()

    assert run(main) == []


def test_async_dispatch_all_override() -> None:
    batches: list[list[str]] = []

    class Batched(airlock.Scope):
        async def _adispatch_all(self, intents: list[airlock.Intent]) -> None:
            batches.append([i.name for i in intents])

    async def main() -> None:
        async with Batched(airlock.BlockTasks({"b"})):
            airlock.enqueue(print, _name="a")
            airlock.enqueue(print, _name="b")

    run(main)
    assert batches == [["a"]]
