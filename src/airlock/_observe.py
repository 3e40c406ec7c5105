"""Observing scopes without writing a policy: observers and log records.

Two moments are worth seeing. When a scope *ends* (flush or discard) it knows
which intents it dispatched, dropped (policy, voided transaction, discard) and
handed to an enclosing scope. When an executor *actually runs* intents (at the
flush, or later, e.g. after a transaction commit) the dispatch has a duration
and maybe failures. Each moment produces one DEBUG record on the ``"airlock"``
logger (with the event in ``record.airlock``) and one call per registered
observer. Nothing is built when nobody is listening.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from ._intent import Intent
    from ._scope import Scope

__all__ = ["DispatchEvent", "Observer", "ScopeEndEvent", "add_observer", "remove_observer"]

logger = logging.getLogger("airlock")
# A library does not decide where records go; the application's logging does.
logger.addHandler(logging.NullHandler())


@dataclass(frozen=True, slots=True)
class ScopeEndEvent:
    """A scope flushed or discarded."""

    scope: Scope
    scope_id: int
    outcome: Literal["flushed", "discarded"]
    origin: str | None
    #: Handed to the scope's dispatch (now, or when its transaction commits).
    dispatched: tuple[Intent, ...]
    #: Refused by a policy, voided by a rolled-back savepoint, or discarded.
    dropped: tuple[Intent, ...]
    #: Captured by an enclosing scope, which will decide about them.
    captured: tuple[Intent, ...]


@dataclass(frozen=True, slots=True)
class DispatchEvent:
    """An executor ran a batch of intents."""

    scope: Scope
    scope_id: int
    origin: str | None
    intents: tuple[Intent, ...]
    failures: tuple[tuple[Intent, Exception], ...]
    duration: float  # seconds, for the whole batch


class Observer(Protocol):
    """What [`add_observer()`][airlock.add_observer] accepts."""

    def on_scope_end(self, event: ScopeEndEvent) -> None: ...

    def on_dispatch(self, event: DispatchEvent) -> None: ...


#: Registered observers. Replaced, never mutated, so readers need no lock.
observers: tuple[Observer, ...] = ()


def add_observer(observer: Observer) -> None:
    """Call ``observer.on_scope_end`` / ``on_dispatch`` for every scope from now on."""
    global observers
    if not (
        callable(getattr(observer, "on_scope_end", None)) and callable(getattr(observer, "on_dispatch", None))
    ):
        raise TypeError(f"an observer needs on_scope_end() and on_dispatch() methods, got {observer!r}")
    if observer not in observers:
        observers = (*observers, observer)


def remove_observer(observer: Observer) -> None:
    """Stop notifying ``observer`` (no error if it was not registered)."""
    global observers
    observers = tuple(o for o in observers if o is not observer)


def listening() -> bool:
    """Whether an event would reach anyone (checked before building one)."""
    return bool(observers) or _debug_enabled(logging.DEBUG)


_debug_enabled = logger.isEnabledFor


def _names(intents: tuple[Intent, ...]) -> list[str]:
    return [intent.name for intent in intents]


def scope_ended(event: ScopeEndEvent) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        _log_scope_end(event)
    for observer in observers:
        _notify(observer.on_scope_end, event)


def _log_scope_end(event: ScopeEndEvent) -> None:
    logger.debug(
        "airlock: scope %d %s (origin=%s): %d dispatched, %d dropped, %d captured",
        event.scope_id,
        event.outcome,
        event.origin,
        len(event.dispatched),
        len(event.dropped),
        len(event.captured),
        extra={
            "airlock": event,
            "airlock_scope_id": event.scope_id,
            "airlock_outcome": event.outcome,
            "airlock_dispatched": _names(event.dispatched),
            "airlock_dropped": _names(event.dropped),
            "airlock_captured": _names(event.captured),
        },
    )


def dispatched(event: DispatchEvent) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        _log_dispatch(event)
    for observer in observers:
        _notify(observer.on_dispatch, event)


def _log_dispatch(event: DispatchEvent) -> None:
    logger.debug(
        "airlock: scope %d ran %d intent(s) in %.6fs, %d failed",
        event.scope_id,
        len(event.intents),
        event.duration,
        len(event.failures),
        extra={
            "airlock": event,
            "airlock_scope_id": event.scope_id,
            "airlock_intents": _names(event.intents),
            "airlock_failed": [intent.name for intent, _ in event.failures],
            "airlock_duration": event.duration,
        },
    )


def _notify(callback: object, event: object) -> None:
    # An observer is a bystander: its failure must never change what the
    # scope does, so it is logged and swallowed.
    try:
        callback(event)  # type: ignore[operator]
    except Exception:
        logger.exception("airlock: observer %r failed", callback)
