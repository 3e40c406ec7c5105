"""SPEC §5.2: an enqueue racing its scope's flush from another thread.

The enqueue either lands in that flush or raises ScopeStateError; it is never
accepted and then lost. The interleavings are forced, not hoped for: a policy
whose ``on_enqueue`` blocks until the owner has flushed holds the enqueue
between its judgement and its append.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import airlock
from airlock import _lifecycle
from core_helpers import Recorder


class Gate(airlock.Policy):
    """on_enqueue of the named task blocks until released (in another thread)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.entered = threading.Event()
        self.release = threading.Event()

    def on_enqueue(self, intent: airlock.Intent) -> None:
        if intent.name == self.name:
            self.entered.set()
            assert self.release.wait(10)


def test_enqueue_blocked_until_the_owner_flushed_raises_and_is_not_lost() -> None:
    rec = Recorder()
    gate = Gate("late")
    with ThreadPoolExecutor(1) as pool:
        with airlock.scope(gate) as s:
            airlock.enqueue(rec.task("early"))
            future = pool.submit(airlock.carry_context(airlock.enqueue), rec.task("late"))
            assert gate.entered.wait(10)  # the other thread is inside enqueue now
        # The owner has flushed; let the other thread's enqueue go on.
        assert s.is_flushed and rec.names == ["early"]
        gate.release.set()
        with pytest.raises(airlock.ScopeStateError, match="late"):
            future.result(10)
    assert rec.names == ["early"]
    assert [i.name for i in s.intents] == ["early"]  # not left behind in the buffer either


class PausingBuffer(list[Any]):
    """A scope buffer whose append of the named intent pauses before or after appending."""

    def __init__(self, name: str, *, after: bool) -> None:
        super().__init__()
        self.name, self.after = name, after
        self.entered = threading.Event()
        self.release = threading.Event()

    def append(self, item: Any) -> None:
        ours = item is not _lifecycle._SEAL and item.name == self.name
        if ours and self.after:
            super().append(item)
        if ours:
            self.entered.set()
            assert self.release.wait(10)
        if not (ours and self.after):
            super().append(item)


@pytest.mark.parametrize("after", [False, True], ids=["paused-before-append", "paused-after-append"])
def test_enqueue_paused_inside_its_append_while_the_owner_flushes(after: bool) -> None:
    # The narrowest window: the enqueue passed every check, and the owner
    # flushes between its state check and its append (or right after the
    # append). Before: the intent comes after the seal, so the enqueue
    # raises. After: the flush took it, so it is dispatched.
    rec = Recorder()
    s = airlock.Scope()
    buffer = s._buffer = PausingBuffer("late", after=after)
    with ThreadPoolExecutor(1) as pool:
        s.enter()
        airlock.enqueue(rec.task("early"))
        future = pool.submit(airlock.carry_context(airlock.enqueue), rec.task("late"))
        assert buffer.entered.wait(10)
        s.exit()
        s.flush()
        buffer.release.set()
        if after:
            future.result(10)
            assert rec.names == ["early", "late"]
        else:
            with pytest.raises(airlock.ScopeStateError, match="late"):
                future.result(10)
            assert rec.names == ["early"]
    assert [i.name for i in s.intents] == rec.names


def test_enqueue_blocked_while_the_owner_exits_lands_in_the_flush() -> None:
    # The scope is exited (not yet flushed) when the enqueue appends: the
    # flush that follows takes it.
    rec = Recorder()
    gate = Gate("late")
    s = airlock.Scope(gate).enter()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(airlock.carry_context(airlock.enqueue), rec.task("late"))
        assert gate.entered.wait(10)
        s.exit()
        gate.release.set()
        future.result(10)
        s.flush()
    assert rec.names == ["late"]


def test_many_threads_racing_a_flush_never_lose_an_accepted_intent() -> None:
    # Unforced interleavings, many times: every enqueue that returned is
    # dispatched exactly once; every other one raised ScopeStateError.
    for _ in range(20):
        ran: list[int] = []
        accepted: list[int] = []
        refused: list[int] = []
        start = threading.Barrier(5)

        def task(n: int) -> None:
            ran.append(n)

        def worker(base: int) -> None:
            start.wait(10)
            for n in range(base, base + 200):
                try:
                    airlock.enqueue(task, n)
                except airlock.ScopeStateError:
                    refused.append(n)
                    return
                accepted.append(n)

        with ThreadPoolExecutor(4) as pool:
            with airlock.scope():
                futures = [pool.submit(airlock.carry_context(worker), k * 1000) for k in range(4)]
                start.wait(10)
            for f in futures:
                f.result(10)
        assert sorted(ran) == sorted(accepted)
        assert not set(refused) & set(ran)


def test_capture_into_an_ancestor_flushed_meanwhile_is_refused_loudly() -> None:
    # A nested scope in another thread flushes into an enclosing scope that
    # the owner has already flushed: ScopeStateError, not a silent loss.
    with airlock.scope() as outer:
        pass
    inner = airlock.Scope()
    inner._parent = outer  # as if entered under outer in a context copy
    inner._buffer.append(airlock.Intent(print, ("x",)))
    with pytest.raises(airlock.ScopeStateError, match="cannot be captured"):
        inner.flush()


def test_a_thread_pool_handed_the_scope_lands_every_intent() -> None:
    rec: list[Any] = []
    with airlock.scope():
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(airlock.carry_context(lambda n: airlock.enqueue(rec.append, n)), range(100)))
    assert sorted(rec) == list(range(100))


def test_a_capture_that_lands_after_the_ancestor_sealed_is_refused() -> None:
    # Another thread seals the enclosing scope right before the captured
    # batch is appended: the batch comes after the seal, so it is taken back
    # out and the flush of the nested scope fails loudly.
    outer = airlock.Scope()

    class SealsFirst(list[Any]):
        def extend(self, items: Any) -> None:
            outer.exit()
            outer.flush()  # the owner, "in another thread", flushes just now
            super().extend(items)

    outer._buffer = SealsFirst()
    rec = Recorder()
    outer.enter()
    inner = airlock.Scope().enter()
    airlock.enqueue(rec.task("x"))
    inner.exit()
    with pytest.raises(airlock.ScopeStateError, match="cannot be captured"):
        inner.flush()
    assert outer.is_flushed and outer.intents == [] and rec.calls == []


def test_a_late_enqueue_before_the_seal_is_taken_by_the_flush() -> None:
    # Found sealed, but no marker yet: the flush will append it after the
    # intent, so the intent is in the flush.
    s = airlock.Scope()
    intent = airlock.Intent(print)
    s._buffer.append(intent)
    s._state = _lifecycle._FLUSHED
    s._late([intent])  # returns: taken
    assert s._buffer == [intent]


def test_the_seal_is_found_behind_late_appends() -> None:
    a, b, c = airlock.Intent(print), airlock.Intent(print), airlock.Intent(print)
    assert _lifecycle._find_seal([a, _lifecycle._SEAL, b, c]) == 1
