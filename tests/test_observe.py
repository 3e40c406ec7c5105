"""Observers and the structured records: seeing flushes, discards and dispatches without a policy."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import airlock
from airlock import DispatchEvent, ScopeEndEvent


class Recording:
    def __init__(self) -> None:
        self.ends: list[ScopeEndEvent] = []
        self.dispatches: list[DispatchEvent] = []

    def on_scope_end(self, event: ScopeEndEvent) -> None:
        self.ends.append(event)

    def on_dispatch(self, event: DispatchEvent) -> None:
        self.dispatches.append(event)


@pytest.fixture
def observer() -> Iterator[Recording]:
    recording = Recording()
    airlock.add_observer(recording)
    try:
        yield recording
    finally:
        airlock.remove_observer(recording)


def noop(*args: object) -> None:
    pass


def test_flush_reports_dispatched_dropped_and_captured_with_scope_and_origin(observer: Recording) -> None:
    with airlock.scope(airlock.BlockTasks({"blocked"}), origin="GET /orders") as outer:
        airlock.enqueue(noop, _name="kept")
        airlock.enqueue(noop, _name="blocked")
        with airlock.scope() as inner:
            airlock.enqueue(noop, _name="nested")
    first, second = observer.ends
    assert first.scope is inner and first.outcome == "flushed"
    assert [i.name for i in first.captured] == ["nested"] and first.dispatched == () and first.dropped == ()
    assert first.origin == "GET /orders"  # inherited from the enclosing scope
    assert second.scope is outer and second.scope_id == outer.id != inner.id
    assert [i.name for i in second.dispatched] == ["kept", "nested"]
    assert [i.name for i in second.dropped] == ["blocked"]
    (run,) = observer.dispatches
    assert [i.name for i in run.intents] == ["kept", "nested"] and run.failures == ()
    assert run.duration >= 0 and run.origin == "GET /orders"
    assert {i.origin for i in run.intents} == {"GET /orders"}


def test_discard_reports_everything_dropped_and_nothing_dispatched(observer: Recording) -> None:
    with pytest.raises(KeyError):
        with airlock.scope() as scope:
            airlock.enqueue(noop, _name="a")
            raise KeyError
    (event,) = observer.ends
    assert event.scope is scope and event.outcome == "discarded"
    assert [i.name for i in event.dropped] == ["a"] and event.dispatched == ()
    assert observer.dispatches == []


def test_dispatch_event_carries_failures(observer: Recording) -> None:
    def boom() -> None:
        raise ValueError("no")

    with pytest.raises(airlock.DispatchError):
        with airlock.scope():
            airlock.enqueue(boom)
            airlock.enqueue(noop, _name="fine")
    (run,) = observer.dispatches
    assert [i.name for i in run.intents] == ["boom", "fine"]
    ((failed, error),) = run.failures
    assert failed.name == "boom" and isinstance(error, ValueError)


def test_a_failing_observer_is_logged_and_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Recording):
        def on_scope_end(self, event: ScopeEndEvent) -> None:
            raise RuntimeError("observer bug")

    broken = Broken()
    airlock.add_observer(broken)
    ran: list[str] = []
    try:
        with airlock.scope():
            airlock.enqueue(ran.append, "effect")
    finally:
        airlock.remove_observer(broken)
    assert ran == ["effect"]
    assert len(broken.dispatches) == 1
    assert any("observer" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def test_add_observer_validates_and_is_idempotent_remove_is_forgiving() -> None:
    with pytest.raises(TypeError, match="on_scope_end"):
        airlock.add_observer(object())  # type: ignore[arg-type]
    recording = Recording()
    airlock.add_observer(recording)
    airlock.add_observer(recording)
    try:
        with airlock.scope():
            airlock.enqueue(noop)
        assert len(recording.ends) == 1  # registered once
    finally:
        airlock.remove_observer(recording)
    airlock.remove_observer(recording)  # not registered any more: no error
    with airlock.scope():
        airlock.enqueue(noop)
    assert len(recording.ends) == 1


def test_empty_scopes_produce_no_event(observer: Recording) -> None:
    with airlock.scope():
        pass
    assert observer.ends == [] and observer.dispatches == []


def test_debug_records_carry_the_event(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="airlock")
    with airlock.scope(origin="task:report") as scope:
        airlock.enqueue(noop, _name="a")
    end = next(r for r in caplog.records if hasattr(r, "airlock_outcome"))
    assert end.airlock.scope is scope and end.airlock_scope_id == scope.id  # type: ignore[attr-defined]
    assert "origin=task:report" in end.getMessage()
    run = next(r for r in caplog.records if hasattr(r, "airlock_duration"))
    assert run.airlock_intents == ["a"] and run.airlock_failed == []  # type: ignore[attr-defined]
