"""Judging: which policies see an intent, when, and how often.

* At enqueue, ``on_enqueue`` of every local policy (innermost first) and of
  every enclosing scope's policy (innermost first), each distinct instance
  once.
* At the final dispatch (never at an inner flush that only hands intents to
  an enclosing scope), ``allows`` of the intent's local policies (innermost
  first), then of every scope it passed through: the one it was enqueued in,
  each one that captured it, and the one dispatching it (for a scope that
  ``dispatches_own_intents``: every enclosing scope too). Each distinct
  instance judges once; asking stops at the first ``False``.

Policies are plain objects: their methods are looked up on the instance when
they are called, so instance attributes and ``mock.patch.object`` take
effect. Nothing here is cached beyond one judgement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._errors import UsageError
from ._intent import Intent
from ._protocols import Policy

__all__ = ["asks_on_enqueue", "checked_subsequence", "distinct", "judge", "selector"]

_NOOP_ON_ENQUEUE = Policy.on_enqueue
_ALLOWS_EVERYTHING = Policy.allows

Selector = Callable[[list[Intent]], list[Intent]]


def distinct(policies: Sequence[Any]) -> tuple[Any, ...]:
    """``policies`` without repeats (by identity), first occurrence kept."""
    kept: list[Any] = []
    for policy in policies:
        if not any(policy is seen for seen in kept):
            kept.append(policy)
    return tuple(kept)


def asks_on_enqueue(policy: object) -> bool:
    """Whether ``policy.on_enqueue`` does anything (it is not the inherited no-op).

    Looks it up on the instance as it is now (an instance attribute, a
    patched class, a ``Mock`` all count).
    """
    return getattr(getattr(policy, "on_enqueue", None), "__func__", None) is not _NOOP_ON_ENQUEUE


def selector(policy: object) -> Selector | None:
    """How ``policy`` filters a batch right now, or ``None`` if it allows everything.

    ``select`` counts only for classes that subclass [`airlock.Policy`][airlock.Policy]
    explicitly (opting in to the optional hook); otherwise ``allows`` is asked
    per intent.
    """
    allows = policy.allows  # type: ignore[attr-defined]
    if getattr(allows, "__func__", None) is _ALLOWS_EVERYTHING and getattr(policy, "select", None) is None:
        return None  # the inherited allow-everything: nothing to ask
    if Policy in type(policy).__mro__:
        select = getattr(policy, "select", None)
        if select is not None:
            return _checked_select(select)
    if getattr(allows, "__func__", None) is _ALLOWS_EVERYTHING:
        return None
    return lambda intents: [intent for intent in intents if allows(intent)]


def _checked_select(select: Callable[[list[Intent]], Any]) -> Selector:
    def run(intents: list[Intent]) -> list[Intent]:
        return checked_subsequence(select(list(intents)), intents, "select")

    return run


def checked_subsequence(chosen: object, offered: list[Intent], hook: str) -> list[Intent]:
    """``chosen`` as a FIFO sub-sequence of ``offered``; errors name ``hook``."""
    if not isinstance(chosen, list):
        raise TypeError(f"{hook}() must return a list of intents, got {type(chosen).__name__}")
    if len(chosen) == len(offered) and all(a is b for a, b in zip(chosen, offered, strict=True)):
        return offered
    offered_ids = {id(i) for i in offered}
    chosen_ids = {id(i) for i in chosen}
    if not chosen_ids <= offered_ids:
        raise UsageError(f"{hook}() returned intents it was not given; it may only filter")
    return [i for i in offered if id(i) in chosen_ids]  # FIFO, whatever order it returned


def judge(intents: list[Intent], chains: list[tuple[Any, ...]]) -> list[Intent]:
    """The intents their judges allow, in FIFO order.

    ``chains[k]`` lists the distinct policies judging ``intents[k]``, in the
    order they are asked. Judging goes in rounds: in round ``r`` each policy
    sees, at once, every still-allowed intent whose ``r``-th judge it is (so a
    ``select`` sees as much of the batch as it can), and an intent refused in
    one round is asked no further.
    """
    alive = list(range(len(intents)))
    round_ = 0
    selectors: dict[int, Selector | None] = {}
    while alive:
        groups: dict[int, tuple[Any, list[int]]] = {}
        for k in alive:
            chain = chains[k]
            if round_ < len(chain):
                policy = chain[round_]
                groups.setdefault(id(policy), (policy, []))[1].append(k)
        if not groups:
            break
        refused: set[int] = set()
        for key, (policy, members) in groups.items():
            if key not in selectors:
                selectors[key] = selector(policy)
            select = selectors[key]
            if select is None:
                continue
            offered = [intents[k] for k in members]
            kept = {id(i) for i in select(offered)}
            refused.update(k for k in members if id(intents[k]) not in kept)
        if refused:
            alive = [k for k in alive if k not in refused]
        round_ += 1
    return [intents[k] for k in alive]
