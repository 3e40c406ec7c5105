"""The exception hierarchy.

Everything airlock raises on purpose derives from [`AirlockError`][airlock.AirlockError], so
``except airlock.AirlockError`` catches every misuse and every dispatch failure
reported by the library, and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._intent import Intent

__all__ = [
    "AirlockError",
    "DispatchError",
    "NoScopeError",
    "PolicyEnqueueError",
    "PolicyViolation",
    "ScopeStateError",
    "UsageError",
]


class AirlockError(Exception):
    """Base class of every error airlock raises."""


class UsageError(AirlockError):
    """The library was called in a way it does not support."""


class NoScopeError(UsageError):
    """``enqueue`` was called without an active ``airlock.scope()``."""


class PolicyEnqueueError(UsageError):
    """A policy callback tried to enqueue: policies judge intents, never create them."""


class ScopeStateError(AirlockError):
    """A scope lifecycle method was called in a state that does not allow it."""


class PolicyViolation(AirlockError):
    """A policy refused an intent at enqueue time (e.g. ``AssertNoEffects``)."""


class DispatchError(AirlockError, ExceptionGroup[Exception]):
    """One or more intents failed to dispatch.

    Raised after *every* allowed intent has been attempted, so one failure never
    cancels the others. It is an `ExceptionGroup` of the underlying
    exceptions (``except* SMTPError`` works) and keeps the pairing with the
    intents that raised them in `failures`.
    """

    failures: tuple[tuple[Intent, Exception], ...]

    def __new__(cls, message: str, failures: Sequence[tuple[Intent, Exception]]) -> DispatchError:
        failures = tuple(failures)
        self = super().__new__(cls, message, [exc for _, exc in failures])
        self.failures = failures
        return self

    def __init__(self, message: str, failures: Sequence[tuple[Intent, Exception]]) -> None:
        super().__init__(message, [exc for _, exc in failures])

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException pickles as ``cls(*self.args)``; our constructor takes
        # the (intent, exception) pairs, so rebuild from those (notes and
        # other attributes travel in the instance dict).
        return (type(self), (self.message, self.failures), dict(vars(self)))

    def derive(self, excs: Sequence[Any]) -> DispatchError:  # type: ignore[override]
        # ``except*`` and ``split()`` build sub-groups through ``derive``; keep
        # them DispatchErrors that still know which intent raised what.
        kept = [(i, e) for i, e in self.failures if any(e is x for x in excs)]
        return DispatchError(self.message, kept)
