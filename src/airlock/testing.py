"""Helpers for asserting on side effects, with or without pytest.

[`capture()`][airlock.testing.capture] runs a block inside a scope whose policy is
[`DropAll`][airlock.DropAll] (so nothing escapes) and hands back a live view of
every intent that reached it, including those that nested scopes flushed into
it. [`assert_enqueued()`][airlock.testing.assert_enqueued] and [`assert_not_enqueued()`][airlock.testing.assert_not_enqueued] check such a
collection and, when they fail, say what was enqueued instead:

    with airlock.testing.capture() as intents:
        checkout(order)
    airlock.testing.assert_enqueued(intents, send_receipt, order.id)

The pytest plugin ([`airlock.pytest_plugin`][airlock.pytest_plugin]) builds on the same pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, overload

from . import DropAll, Intent, PolicyProtocol, Scope, scope
from ._intent import task_name

__all__ = [
    "CapturedIntents",
    "assert_enqueued",
    "assert_not_enqueued",
    "capture",
    "describe_intents",
    "find_intents",
]


class CapturedIntents(Sequence[Intent]):
    """A read-only, live sequence of the intents a [`capture()`][airlock.testing.capture] block saw.

    While the block runs it reflects the scope's buffer as it grows; once the
    block has ended it keeps the final list (what the scope held when it
    ended), so assertions after the ``with`` still work. ``.scope`` is the
    underlying [`Scope`][airlock.Scope].
    """

    __slots__ = ("_scope", "_final")

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._final: list[Intent] | None = None

    @property
    def scope(self) -> Scope:
        """The scope doing the capturing."""
        return self._scope

    @property
    def names(self) -> list[str]:
        """The names of the captured intents, in FIFO order."""
        return [intent.name for intent in self._current()]

    def _current(self) -> list[Intent]:
        return self._final if self._final is not None else self._scope.intents

    def _freeze(self) -> None:
        self._final = self._scope.intents

    @overload
    def __getitem__(self, index: int) -> Intent: ...
    @overload
    def __getitem__(self, index: slice) -> list[Intent]: ...

    def __getitem__(self, index: int | slice) -> Intent | list[Intent]:
        return self._current()[index]

    def __len__(self) -> int:
        return len(self._current())

    def __iter__(self) -> Iterator[Intent]:
        return iter(self._current())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CapturedIntents):
            return self._current() == other._current()
        if isinstance(other, list):
            return self._current() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CapturedIntents({self._current()!r})"


class capture:  # noqa: N801 - used like a function: ``with capture() as intents:``
    """Run a block in a scope that dispatches nothing and collect its intents.

    ``with capture() as intents:`` (or ``async with``, which also accepts
    coroutine tasks) yields a [`CapturedIntents`][airlock.testing.CapturedIntents]. The scope is an
    ordinary ``airlock.scope()`` (so the configured scope class, e.g.
    ``DjangoScope``, is used) with ``policy=DropAll()`` unless you pass another
    ``policy``; every other keyword goes to [`airlock.scope()`][airlock.scope]. Intents of
    nested scopes that flush are captured too; those of nested scopes that
    discard (an exception) are not, exactly as in production.
    """

    __slots__ = ("_scope", "_view")

    def __init__(self, policy: PolicyProtocol | None = None, **scope_kwargs: Any) -> None:
        self._scope = scope(DropAll() if policy is None else policy, **scope_kwargs)
        self._view = CapturedIntents(self._scope)

    def __enter__(self) -> CapturedIntents:
        self._scope.__enter__()
        return self._view

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._scope.__exit__(exc_type, exc, tb)
        finally:
            self._view._freeze()

    async def __aenter__(self) -> CapturedIntents:
        await self._scope.__aenter__()
        return self._view

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._scope.__aexit__(exc_type, exc, tb)
        finally:
            self._view._freeze()


TaskRef = Callable[..., Any] | str
IntentSource = Scope | Iterable[Intent]


def _intents_of(source: IntentSource, where: str) -> list[Intent]:
    if isinstance(source, Scope):
        return source.intents
    if isinstance(source, (str, bytes)) or not isinstance(source, Iterable):
        raise TypeError(
            f"{where}() needs a Scope, the result of capture(), or a list of intents as its first "
            f"argument, got {source!r}"
        )
    intents = list(source)
    for item in intents:
        if not isinstance(item, Intent):
            raise TypeError(
                f"{where}() was given {item!r} among the intents; expected airlock.Intent objects"
            )
    return intents


def _describe_task(task: TaskRef) -> str:
    return task if isinstance(task, str) else task_name(task)


def _is_task(intent: Intent, task: TaskRef) -> bool:
    if isinstance(task, str):
        return intent.name == task
    return intent.task is task or intent.task == task


def _call_text(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def find_intents(source: IntentSource, task: TaskRef, /, *args: Any, **kwargs: Any) -> list[Intent]:
    """The intents in ``source`` for ``task`` (a task object or an intent name).

    With no ``args``/``kwargs`` every intent of that task matches; otherwise
    both must be equal to the intent's (``unittest.mock.ANY`` works as a
    wildcard for one argument).
    """
    if not (isinstance(task, str) or callable(task)):
        raise TypeError(f"find_intents() needs a task or an intent name, got {task!r}")
    intents = _intents_of(source, "find_intents")
    return _matching(intents, task, args, kwargs)


def _matching(
    intents: list[Intent], task: TaskRef, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[Intent]:
    any_call = not args and not kwargs
    return [
        intent
        for intent in intents
        if _is_task(intent, task) and (any_call or (intent.args == args and intent.kwargs == kwargs))
    ]


def describe_intents(intents: Iterable[Intent], *, prefix: str = "  ") -> str:
    """One numbered line per intent (name, args, kwargs, origin), for failure messages."""
    lines = []
    for number, intent in enumerate(intents, 1):
        line = f"{prefix}#{number} {intent}"
        if intent.origin is not None:
            line += f"  [origin: {intent.origin}]"
        lines.append(line)
    return "\n".join(lines) if lines else f"{prefix}(nothing was enqueued)"


def _diff_against(intents: list[Intent], task: TaskRef, expected: str) -> str:
    """A diff-like listing: the expected call, then what is there instead."""
    lines = [f"- {expected}    (expected)"]
    if not intents:
        lines.append("+ (nothing was enqueued)")
    for number, intent in enumerate(intents, 1):
        note = "same task, different arguments" if _is_task(intent, task) else "other task"
        line = f"+ {intent}    (#{number}, {note}"
        if intent.origin is not None:
            line += f", origin: {intent.origin}"
        lines.append(line + ")")
    return "\n".join(lines)


def assert_enqueued(
    source: IntentSource, task: TaskRef, /, *args: Any, _count: int | None = None, **kwargs: Any
) -> list[Intent]:
    """Fail unless ``task`` was enqueued (with these arguments, if given).

    ``source`` is a [`Scope`][airlock.Scope], what [`capture()`][airlock.testing.capture] yielded, or
    any iterable of intents; ``task`` is the task object or the intent name.
    Without ``args``/``kwargs`` any call of the task matches; with them both
    must be equal. ``_count`` requires exactly that many matches. Returns the
    matching intents. The ``AssertionError`` lists what was enqueued instead.
    """
    if not (isinstance(task, str) or callable(task)):
        raise TypeError(f"assert_enqueued() needs a task or an intent name, got {task!r}")
    if _count is not None and (not isinstance(_count, int) or isinstance(_count, bool) or _count < 1):
        raise ValueError(
            f"assert_enqueued(_count=...) must be a positive int, got {_count!r}; "
            "use assert_not_enqueued() to check for zero"
        )
    intents = _intents_of(source, "assert_enqueued")
    found = _matching(intents, task, args, kwargs)
    expected = (
        _call_text(_describe_task(task), args, kwargs) if args or kwargs else f"{_describe_task(task)}(...)"
    )
    if not found:
        raise AssertionError(
            f"{expected} was not enqueued; {len(intents)} intent(s) were:\n"
            + _diff_against(intents, task, expected)
        )
    if _count is not None and len(found) != _count:
        raise AssertionError(
            f"{expected} was enqueued {len(found)} time(s), expected {_count}; all intents:\n"
            + describe_intents(intents)
        )
    return found


def assert_not_enqueued(source: IntentSource, task: TaskRef, /, *args: Any, **kwargs: Any) -> None:
    """Fail if ``task`` was enqueued (with these arguments, if given).

    Same matching rules as [`assert_enqueued()`][airlock.testing.assert_enqueued]; the ``AssertionError``
    names the offending intents and lists everything that was enqueued.
    """
    if not (isinstance(task, str) or callable(task)):
        raise TypeError(f"assert_not_enqueued() needs a task or an intent name, got {task!r}")
    intents = _intents_of(source, "assert_not_enqueued")
    found = _matching(intents, task, args, kwargs)
    if found:
        expected = _call_text(_describe_task(task), args, kwargs) if args or kwargs else _describe_task(task)
        offending = ", ".join(f"#{intents.index(i) + 1} {i}" for i in found)
        raise AssertionError(
            f"{expected} was enqueued {len(found)} time(s) ({offending}); all intents:\n"
            + describe_intents(intents)
        )
