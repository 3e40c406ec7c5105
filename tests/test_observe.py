"""Observers: one event per scope end and per executed batch."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import airlock
from core_helpers import Recorder


class Spy:
    def __init__(self) -> None:
        self.ends: list[airlock.ScopeEndEvent] = []
        self.dispatches: list[airlock.DispatchEvent] = []

    def on_scope_end(self, event: airlock.ScopeEndEvent) -> None:
        self.ends.append(event)

    def on_dispatch(self, event: airlock.DispatchEvent) -> None:
        self.dispatches.append(event)


@pytest.fixture
def spy() -> Iterator[Spy]:
    observer = Spy()
    airlock.add_observer(observer)
    try:
        yield observer
    finally:
        airlock.remove_observer(observer)


def _names(intents: Any) -> list[str]:
    return [i.name for i in intents]


def test_flush_event(spy: Spy) -> None:
    rec = Recorder()
    with airlock.Scope(airlock.BlockTasks({"b"}), origin="/checkout") as s:
        airlock.enqueue(rec.task("a"))
        airlock.enqueue(rec.task("b"))
    [end] = spy.ends
    assert end.scope is s and end.scope_id == s.id and end.outcome == "flushed"
    assert end.origin == "/checkout"
    assert _names(end.dispatched) == ["a"] and _names(end.dropped) == ["b"] and end.captured == ()
    [ran] = spy.dispatches
    assert ran.scope is s and _names(ran.intents) == ["a"] and ran.failures == () and ran.duration >= 0


def test_discard_event(spy: Spy) -> None:
    with pytest.raises(ValueError):
        with airlock.scope():
            airlock.enqueue(print, _name="x")
            raise ValueError
    [end] = spy.ends
    assert end.outcome == "discarded" and _names(end.dropped) == ["x"] and end.dispatched == ()
    assert spy.dispatches == []


def test_nested_events_show_what_was_captured(spy: Spy) -> None:
    rec = Recorder()
    with airlock.scope() as outer:
        with airlock.scope() as inner:
            airlock.enqueue(rec.task("x"))
    first, second = spy.ends
    assert first.scope is inner and _names(first.captured) == ["x"] and first.dispatched == ()
    assert second.scope is outer and _names(second.dispatched) == ["x"]
    assert [d.scope for d in spy.dispatches] == [outer]


def test_failures_reach_the_dispatch_event(spy: Spy) -> None:
    rec = Recorder()
    err = KeyError("k")
    with pytest.raises(airlock.DispatchError):
        with airlock.scope():
            airlock.enqueue(rec.failing("bad", err))
    [ran] = spy.dispatches
    assert [(i.name, e) for i, e in ran.failures] == [("bad", err)]


def test_deferred_dispatch_reports_when_it_runs(spy: Spy) -> None:
    rec = Recorder()

    class Deferred(airlock.Scope):
        pending: list[airlock.Intent] = []

        def _dispatch_all(self, intents: list[airlock.Intent]) -> None:
            self.pending = intents

        def commit(self) -> None:
            super()._dispatch_all(self.pending)

    with Deferred() as s:
        airlock.enqueue(rec.task("later"))
    assert len(spy.ends) == 1 and spy.dispatches == []
    s.commit()
    assert rec.names == ["later"] and _names(spy.dispatches[0].intents) == ["later"]


def test_add_twice_notifies_once_and_remove_stops(spy: Spy) -> None:
    airlock.add_observer(spy)
    with airlock.scope():
        airlock.enqueue(print, _name="a")
    assert len(spy.ends) == 1
    airlock.remove_observer(spy)
    airlock.remove_observer(spy)  # not registered any more: no error
    with airlock.scope():
        airlock.enqueue(print, _name="a")
    assert len(spy.ends) == 1


def test_bad_observer_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="on_scope_end"):
        airlock.add_observer(object())  # type: ignore[arg-type]


def test_a_failing_observer_is_logged_and_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Spy):
        def on_scope_end(self, event: airlock.ScopeEndEvent) -> None:
            raise RuntimeError("observer bug")

    broken = Broken()
    airlock.add_observer(broken)
    rec = Recorder()
    try:
        with airlock.scope():
            airlock.enqueue(rec.task("a"))
    finally:
        airlock.remove_observer(broken)
    assert rec.names == ["a"]
    assert any("observer" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert len(broken.dispatches) == 1


def test_scope_ids_are_unique_and_stable() -> None:
    a, b = airlock.Scope(), airlock.Scope()
    assert a.id != b.id and a.id == a.id
