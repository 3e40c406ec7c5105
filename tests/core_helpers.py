"""Small helpers shared by the core tests (no framework, no services)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import airlock


class Recorder:
    """Named tasks that record their calls, in order, in one shared list."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def task(self, name: str) -> Callable[..., None]:
        def run(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))

        run.__name__ = run.__qualname__ = name
        return run

    def failing(self, name: str, exc: BaseException) -> Callable[..., None]:
        def run(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))
            raise exc

        run.__name__ = run.__qualname__ = name
        return run

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]

    @property
    def first_args(self) -> list[Any]:
        return [args[0] for _, args, _ in self.calls]


class AllowNames(airlock.Policy):
    """A custom filter: allow only the given intent names."""

    def __init__(self, *names: str) -> None:
        self.allowed = frozenset(names)

    def allows(self, intent: airlock.Intent) -> bool:
        return intent.name in self.allowed


class PassThrough(airlock.Scope):
    """A scope that lets a nested scope dispatch the named intents itself."""

    passthrough: frozenset[str] = frozenset()

    def before_descendant_flushes(
        self, exiting_scope: airlock.Scope, intents: list[airlock.Intent]
    ) -> list[airlock.Intent]:
        return [i for i in intents if i.name in self.passthrough]


def passthrough_scope(*names: str) -> type[airlock.Scope]:
    return type("PassThrough", (PassThrough,), {"passthrough": frozenset(names)})
