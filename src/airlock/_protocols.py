"""What airlock asks of the objects users plug in: policies and executors.

A leaf module (it imports nothing from airlock at run time), so every other
module can use these names without an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._intent import Intent

__all__ = ["Executor", "Policy", "PolicyProtocol"]


@runtime_checkable
class Policy(Protocol):
    """WHICH effects escape: a per-intent gate.

    Any object with these two methods is a policy (``isinstance(obj,
    airlock.Policy)`` is true for it); subclassing is optional and gives the
    no-op defaults below, so a subclass overrides only what it needs:

    * ``on_enqueue(intent)`` runs when the intent is created, at the line that
      asked for it; raise [`PolicyViolation`][airlock.PolicyViolation] to refuse it there.
    * ``allows(intent)`` runs once, when the intent is finally dispatched;
      ``False`` drops it silently.

    One optional hook exists for classes that subclass ``Policy`` explicitly
    (a duck-typed policy's other attributes never change what airlock does):
    ``select(intents) -> list`` sees every intent of one dispatch that this
    policy judges at once, in FIFO order, and returns the ones that may go on
    (a sub-sequence: policies filter, they never reorder). Define it instead
    of ``allows`` for decisions about a whole batch (coalescing, rate limits).

    Methods are looked up on the instance each time airlock calls them, so an
    instance attribute or ``mock.patch.object(policy, "allows", ...)`` takes
    effect.
    """

    def on_enqueue(self, intent: Intent) -> None:
        """Called when ``intent`` is enqueued; raise ``PolicyViolation`` to refuse it."""
        return

    def allows(self, intent: Intent) -> bool:
        """Called when ``intent`` is about to be dispatched; return ``False`` to drop it."""
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


#: Compatibility name: an earlier spelling of [`Policy`][airlock.Policy] (the same object).
#: Prefer ``airlock.Policy``.
PolicyProtocol = Policy


@runtime_checkable
class Executor(Protocol):
    """HOW effects run: a callable taking an [`Intent`][airlock.Intent].

    ``airlock._execute`` (the default, in-process) and every executor in
    ``airlock.integrations.executors`` are instances. An executor may return an
    awaitable, which an ``async with`` scope awaits. It may also offer
    ``validate(intent)``, called at enqueue time to refuse an intent its
    backend could never send.
    """

    def __call__(self, intent: Intent) -> Any: ...
