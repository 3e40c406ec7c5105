"""SPEC §2.9: concurrent threads, asyncio tasks and greenlets each keep their own scope.

Every test runs hundreds of units that are all mid-scope at the same time
(a barrier, or a yield to the event loop / hub), each with a nested scope and a
local policy, and checks that each unit dispatches exactly its own intents.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import gevent

import airlock

UNITS = 200


def _expected(unit: int) -> list[tuple[str, int, int]]:
    # what one unit dispatches: see _unit_body
    return [("own", unit, 0), ("nested", unit, 1), ("own", unit, 2)]


class Unit:
    """One unit of work; `pause` yields to the other units mid-scope."""

    def __init__(self, unit: int) -> None:
        self.unit = unit
        self.dispatched: list[tuple[str, int, int]] = []

    def executor(self, intent: airlock.Intent) -> None:
        self.dispatched.append((intent.name, *intent.args))


def _task(*args: Any) -> None:
    pass


def test_hundreds_of_threads_mid_scope_at_once() -> None:
    barrier = threading.Barrier(UNITS)
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []

    def run(unit: int) -> None:
        u = Unit(unit)
        try:
            with airlock.Scope(executor=u.executor) as s:
                airlock.enqueue(_task, unit, 0, _name="own")
                with airlock.policy(airlock.BlockTasks({"blocked"})):
                    with airlock.scope():
                        airlock.enqueue(_task, unit, 1, _name="nested")
                        airlock.enqueue(_task, unit, 9, _name="blocked")
                        barrier.wait(30)  # every thread is inside a nested scope now
                        assert airlock.get_current_scope() is not s
                    barrier.wait(30)
                assert airlock.get_current_scope() is s
                airlock.enqueue(_task, unit, 2, _name="own")
                assert [i.args[0] for i in s.intents] == [unit] * 4  # the blocked one is dropped at dispatch
            results[unit] = u.dispatched
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(UNITS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert results == {n: _expected(n) for n in range(UNITS)}
    assert airlock.get_current_scope() is None


def test_hundreds_of_asyncio_tasks_interleaved_mid_scope() -> None:
    units = 500
    inside = 0
    max_inside = 0

    async def run(unit: int) -> list[Any]:
        nonlocal inside, max_inside
        u = Unit(unit)
        async with airlock.Scope(executor=u.executor) as s:
            airlock.enqueue(_task, unit, 0, _name="own")
            await asyncio.sleep(0)
            async with airlock.policy(airlock.BlockTasks({"blocked"})):
                async with airlock.scope():
                    inside += 1
                    max_inside = max(max_inside, inside)
                    airlock.enqueue(_task, unit, 1, _name="nested")
                    for _ in range(3):
                        await asyncio.sleep(0)
                    airlock.enqueue(_task, unit, 9, _name="blocked")
                    inside -= 1
            await asyncio.sleep(0)
            assert airlock.get_current_scope() is s
            airlock.enqueue(_task, unit, 2, _name="own")
        return u.dispatched

    async def main() -> list[list[Any]]:
        return await asyncio.gather(*(run(n) for n in range(units)))

    results = asyncio.run(main())
    assert results == [_expected(n) for n in range(units)]
    assert max_inside == units  # they really were all mid-scope at once


def test_hundreds_of_gevent_greenlets_interleaved_mid_scope() -> None:
    units = 500
    inside = 0
    max_inside = 0

    def run(unit: int) -> list[Any]:
        nonlocal inside, max_inside
        u = Unit(unit)
        with airlock.Scope(executor=u.executor) as s:
            airlock.enqueue(_task, unit, 0, _name="own")
            gevent.sleep(0)
            with airlock.policy(airlock.BlockTasks({"blocked"})):
                with airlock.scope():
                    inside += 1
                    max_inside = max(max_inside, inside)
                    airlock.enqueue(_task, unit, 1, _name="nested")
                    for _ in range(3):
                        gevent.sleep(0)
                    airlock.enqueue(_task, unit, 9, _name="blocked")
                    inside -= 1
            gevent.sleep(0)
            assert airlock.get_current_scope() is s
            airlock.enqueue(_task, unit, 2, _name="own")
        return u.dispatched

    greenlets = [gevent.spawn(run, n) for n in range(units)]
    gevent.joinall(greenlets, timeout=60, raise_error=True)
    assert [g.value for g in greenlets] == [_expected(n) for n in range(units)]
    assert max_inside == units
    assert airlock.get_current_scope() is None


def test_greenlets_do_not_see_the_spawning_scope() -> None:
    # A greenlet starts with its own, empty context (greenlet >= 1.0).
    def probe() -> Any:
        return airlock.get_current_scope()

    with airlock.scope():
        g = gevent.spawn(probe)
        g.join(10)
    assert g.successful() and g.value is None


def test_threads_do_not_see_the_spawning_scope() -> None:
    seen: list[Any] = []
    with airlock.scope():
        t = threading.Thread(target=lambda: seen.append(airlock.get_current_scope()))
        t.start()
        t.join(10)
    assert seen == [None]


def test_asyncio_tasks_inherit_but_do_not_leak_back() -> None:
    # A task created inside a scope sees it (a copy of the context) and its own
    # scopes never leak back into the creator.
    async def child(outer: airlock.Scope) -> None:
        assert airlock.get_current_scope() is outer
        async with airlock.scope():
            await asyncio.sleep(0)
            airlock.enqueue(_task, _name="from_child")

    async def main() -> list[str]:
        async with airlock.scope(airlock.DropAll()) as outer:
            task = asyncio.create_task(child(outer))
            await asyncio.sleep(0)
            assert airlock.get_current_scope() is outer
            await task
            return [i.name for i in outer.captured_intents]

    assert asyncio.run(main()) == ["from_child"]
