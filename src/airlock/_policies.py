"""Policies: the per-intent gate that decides WHICH effects escape.

A policy has two hooks. ``on_enqueue(intent)`` runs when the intent is created
and may raise [`PolicyViolation`][airlock.PolicyViolation] to refuse it on the spot, at the
line that asked for it. ``allows(intent)`` runs once, when the intent is
finally dispatched, and returns whether it may go; ``False`` drops it silently.
Policies filter, they never reorder, and they may not enqueue.

The protocol (and base class with no-op defaults) is [`airlock.Policy`][airlock.Policy];
this module holds the built-in policies and the one check of "is this a
policy?".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from ._errors import PolicyViolation
from ._intent import Intent
from ._protocols import Policy, PolicyProtocol

__all__ = [
    "AllowAll",
    "AssertNoEffects",
    "BlockTasks",
    "CoalesceDuplicates",
    "DropAll",
    "LogOnFlush",
    "Policy",
    "PolicyProtocol",
    "check_policy",
]


def check_policy(policy: object, where: str) -> None:
    """``TypeError`` at the caller's line unless ``policy`` is a policy instance."""
    if isinstance(policy, type):
        name = policy.__name__
        raise TypeError(f"{where} needs a policy instance, got the class {name}; write {name}()")
    if not (callable(getattr(policy, "on_enqueue", None)) and callable(getattr(policy, "allows", None))):
        raise TypeError(f"{where} needs a policy (an object with on_enqueue() and allows()), got {policy!r}")


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
    """Raise [`PolicyViolation`][airlock.PolicyViolation] at any enqueue, naming the task.

    For code that must stay pure: the error points at the line that tried to
    cause an effect.
    """

    def on_enqueue(self, intent: Intent) -> None:
        raise PolicyViolation(
            f"AssertNoEffects: {intent.name} was enqueued ({intent}): "
            "Unexpected side effect in code that must not cause side effects"
        )

    def allows(self, intent: Intent) -> bool:
        # Unreachable through enqueue (on_enqueue refuses first), but an intent
        # smuggled into the scope some other way still must not escape.
        return False


class BlockTasks(Policy):
    """Drop intents whose name is in ``names``; allow the rest.

    With ``raise_on_enqueue=True`` a blocked intent raises
    [`PolicyViolation`][airlock.PolicyViolation] at the enqueue line instead.
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
    """Log every intent when it is dispatched (INFO), allow all. Default logger: ``"airlock"``.

    ``allows`` runs once per intent, when a scope finally dispatches it, so an
    intent is logged once and never one that an enclosing scope then discards.
    """

    def __init__(self, logger: logging.Logger | str | None = None) -> None:
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or "airlock")
        self.logger = logger

    def allows(self, intent: Intent) -> bool:
        self.logger.info("airlock: flushing %s", intent)
        return True

    def __repr__(self) -> str:
        return f"LogOnFlush(logger={self.logger.name!r})"


class CoalesceDuplicates(Policy):
    """Dispatch each distinct intent once per dispatch, at its first position.

    A bulk job that saves 10,000 orders enqueues 10,000 identical "rebuild
    cache" intents; with this policy the flush sends one. Two intents are
    duplicates only when they are truly the same effect: the same task object
    (``is``), equal positional and keyword arguments (compared with ``==``,
    never by ``repr()``) and equal dispatch options. Pass ``names`` to coalesce
    only intents with those names, or ``key`` to say yourself what makes two
    intents the same (a callable returning a hashable value).

    The policy keeps no state between dispatches, so one instance can be shared
    by every scope (``airlock.configure(policy=CoalesceDuplicates())``) and by
    any number of concurrent threads or tasks.
    """

    def __init__(
        self,
        key: Callable[[Intent], Hashable] | None = None,
        *,
        names: Iterable[str] | None = None,
    ) -> None:
        if isinstance(names, str):
            raise TypeError(f"names must be a collection of task names, not the string {names!r}")
        if key is not None and not callable(key):
            raise TypeError(f"CoalesceDuplicates(key=...) needs a callable, got {key!r}")
        self.key = key
        self.names = frozenset(names) if names is not None else None

    def select(self, intents: list[Intent]) -> list[Intent]:
        """The first of each group of duplicates, in FIFO order."""
        names, key = self.names, self.key
        kept: list[Intent] = []
        seen_keys: set[Hashable] = set()
        # Per task object: intents kept so far whose arguments are unhashable,
        # compared one by one with ``==``.
        unhashable: dict[int, list[Intent]] = {}
        for intent in intents:
            if names is not None and intent.name not in names:
                kept.append(intent)
                continue
            if key is not None:
                k = key(intent)
                if k in seen_keys:
                    continue
                seen_keys.add(k)
                kept.append(intent)
                continue
            task, options = intent._task, intent.dispatch_options
            try:
                # id(task): the same object, never an equal or same-named one.
                # (The task is alive, held by the intent, so its id is stable.)
                k = (id(task), intent._args, frozenset(intent._kwargs.items()), _freeze(options))
                hash(k)
            except TypeError:
                same_task = unhashable.setdefault(id(task), [])
                if any(_same_effect(intent, other) for other in same_task):
                    continue
                same_task.append(intent)
                kept.append(intent)
                continue
            if k in seen_keys:
                continue
            seen_keys.add(k)
            kept.append(intent)
        return kept

    def __repr__(self) -> str:
        args = []
        if self.key is not None:
            args.append(f"key={getattr(self.key, '__name__', self.key)!r}")
        if self.names is not None:
            args.append(f"names={sorted(self.names)!r}")
        return f"CoalesceDuplicates({', '.join(args)})"


def _freeze(options: Any) -> Hashable:
    return None if options is None else frozenset(options.items())


def _same_effect(a: Intent, b: Intent) -> bool:
    return (
        a._task is b._task
        and a._args == b._args
        and a._kwargs == b._kwargs
        and a.dispatch_options == b.dispatch_options
    )
