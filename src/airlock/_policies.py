"""Policies: the per-intent gate that decides WHICH effects escape.

A policy has two hooks. ``on_enqueue(intent)`` runs when the intent is created
and may raise :class:`~airlock.PolicyViolation` to refuse it on the spot, at the
line that asked for it. ``allows(intent)`` runs at flush and returns whether the
intent may be dispatched; ``False`` drops it silently. Policies filter, they
never reorder, and they may not enqueue.

Subclassing :class:`Policy` is optional (any object with both methods works),
but it lets airlock skip hooks you did not override, which keeps scopes that
use only permissive policies as cheap as possible.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Protocol, runtime_checkable

from ._errors import PolicyViolation
from ._intent import Intent

__all__ = [
    "AllowAll",
    "AssertNoEffects",
    "BlockTasks",
    "CoalesceDuplicates",
    "DropAll",
    "LogOnFlush",
    "Policy",
    "PolicyProtocol",
]


@runtime_checkable
class PolicyProtocol(Protocol):
    """What airlock needs of a policy object."""

    def on_enqueue(self, intent: Intent) -> None: ...

    def allows(self, intent: Intent) -> bool: ...


class Policy:
    """Base class for policies: observe nothing, allow everything.

    Override :meth:`on_enqueue` and/or :meth:`allows`. For decisions that need
    to see a whole flush at once (coalescing, rate limits), override
    :meth:`select` instead of :meth:`allows`.
    """

    def on_enqueue(self, intent: Intent) -> None:
        """Called when ``intent`` is enqueued; raise ``PolicyViolation`` to refuse it."""

    def allows(self, intent: Intent) -> bool:
        """Called at flush; return ``False`` to drop ``intent``."""
        return True

    def select(self, intents: list[Intent]) -> list[Intent]:
        """The intents of one flush that may go on, in their original order.

        The default keeps those for which :meth:`allows` is true. Overrides must
        return a sub-sequence of ``intents``: policies filter, they never
        reorder or add.
        """
        allows = self.allows
        return [intent for intent in intents if allows(intent)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_hooks_by_class: dict[type, tuple[bool, bool, bool]] = {}


def _class_hooks(cls: type) -> tuple[bool, bool, bool]:
    """(overrides on_enqueue, overrides select, overrides allows) for a policy class, cached."""
    hooks = _hooks_by_class.get(cls)
    if hooks is None:
        select = getattr(cls, "select", None)
        hooks = _hooks_by_class[cls] = (
            getattr(cls, "on_enqueue", None) is not Policy.on_enqueue,
            select is not None and select is not Policy.select,
            getattr(cls, "allows", None) is not Policy.allows,
        )
    return hooks


def on_enqueue_hook(policy: object) -> Callable[[Intent], None] | None:
    """The policy's ``on_enqueue``, or ``None`` when it is the inherited no-op."""
    if not _class_hooks(type(policy))[0]:
        return None
    hook: Callable[[Intent], None] = policy.on_enqueue  # type: ignore[attr-defined]
    return hook


def select_hook(policy: object) -> Callable[[list[Intent]], list[Intent]] | None:
    """How to filter one flush through ``policy``, or ``None`` if it allows everything."""
    _, overrides_select, overrides_allows = _class_hooks(type(policy))
    if overrides_select or (overrides_allows and hasattr(policy, "select")):
        bound: Callable[[list[Intent]], list[Intent]] = policy.select  # type: ignore[attr-defined]
        return bound
    if overrides_allows:  # a duck-typed policy without select()
        allows: Callable[[Intent], bool] = policy.allows  # type: ignore[attr-defined]
        return lambda intents: [intent for intent in intents if allows(intent)]
    return None


class AllowAll(Policy):
    """Dispatch everything (the default)."""


class DropAll(Policy):
    """Dispatch nothing; intents stay inspectable in the scope until it ends.

    The policy for dry runs, migrations, and tests that look at what *would*
    have happened.
    """

    def allows(self, intent: Intent) -> bool:
        return False


class AssertNoEffects(Policy):
    """Raise :class:`~airlock.PolicyViolation` at any enqueue, naming the task.

    For code that must stay pure: the error points at the line that tried to
    cause an effect.
    """

    def on_enqueue(self, intent: Intent) -> None:
        raise PolicyViolation(
            f"AssertNoEffects: {intent.name} was enqueued ({intent}), "
            "but this code must not cause side effects"
        )

    def allows(self, intent: Intent) -> bool:
        # Unreachable through enqueue (on_enqueue refuses first), but an intent
        # smuggled into the scope some other way still must not escape.
        return False


class BlockTasks(Policy):
    """Drop intents whose name is in ``names``; allow the rest.

    With ``raise_on_enqueue=True`` a blocked intent raises
    :class:`~airlock.PolicyViolation` at the enqueue line instead.
    """

    def __init__(self, names: Iterable[str], *, raise_on_enqueue: bool = False) -> None:
        if isinstance(names, str):
            raise TypeError(
                f"BlockTasks expects a collection of task names, got the string {names!r}; "
                f"write BlockTasks({{{names!r}}})"
            )
        self.names = frozenset(names)
        self.raise_on_enqueue = raise_on_enqueue

    def on_enqueue(self, intent: Intent) -> None:
        if self.raise_on_enqueue and intent.name in self.names:
            raise PolicyViolation(f"BlockTasks: {intent.name} is blocked ({intent})")

    def allows(self, intent: Intent) -> bool:
        return intent.name not in self.names

    def __repr__(self) -> str:
        extra = ", raise_on_enqueue=True" if self.raise_on_enqueue else ""
        return f"BlockTasks({sorted(self.names)!r}{extra})"


class LogOnFlush(Policy):
    """Log every intent at flush (INFO), allow all. Default logger: ``"airlock"``."""

    def __init__(self, logger: logging.Logger | str | None = None) -> None:
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or "airlock")
        self.logger = logger

    def allows(self, intent: Intent) -> bool:
        self.logger.info("airlock: flushing %s", intent)
        return True

    def __repr__(self) -> str:
        return f"LogOnFlush(logger={self.logger.name!r})"


def _default_key(intent: Intent) -> Hashable:
    try:
        key = (intent.name, intent.args, frozenset(intent.kwargs.items()))
        hash(key)
        return key
    except TypeError:
        # Unhashable arguments: their repr is the best equality we have.
        return (intent.name, repr(intent.args), repr(sorted(intent.kwargs.items())))


class CoalesceDuplicates(Policy):
    """Dispatch each distinct intent once per flush, at its first position.

    A bulk job that saves 10,000 orders enqueues 10,000 identical "rebuild
    cache" intents; with this policy the flush sends one. Two intents are
    duplicates when ``key(intent)`` is equal; the default key is the intent's
    name, args and kwargs. Pass ``names`` to coalesce only those tasks.

    The policy keeps no state between flushes, so one instance can be shared by
    every scope (``airlock.configure(policy=CoalesceDuplicates())``) and by any
    number of concurrent threads or tasks.
    """

    def __init__(
        self,
        key: Callable[[Intent], Hashable] | None = None,
        *,
        names: Iterable[str] | None = None,
    ) -> None:
        if isinstance(names, str):
            raise TypeError(f"names must be a collection of task names, not the string {names!r}")
        self.key = key or _default_key
        self.names = frozenset(names) if names is not None else None

    def select(self, intents: list[Intent]) -> list[Intent]:
        seen: set[Hashable] = set()
        kept: list[Intent] = []
        key, names = self.key, self.names
        for intent in intents:
            if names is None or intent.name in names:
                k = key(intent)
                if k in seen:
                    continue
                seen.add(k)
            kept.append(intent)
        return kept

    def __repr__(self) -> str:
        args = []
        if self.key is not _default_key:
            args.append(f"key={getattr(self.key, '__name__', self.key)!r}")
        if self.names is not None:
            args.append(f"names={sorted(self.names)!r}")
        return f"CoalesceDuplicates({', '.join(args)})"
