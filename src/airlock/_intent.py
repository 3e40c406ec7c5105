"""The [`Intent`][airlock.Intent]: a side effect that has been asked for but not yet run."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from ._protocols import Policy as PolicyProtocol

__all__ = ["Intent", "ReadOnlyDict", "is_coroutine_task", "task_name"]


def is_coroutine_task(task: object) -> bool:
    """Whether calling ``task`` gives a coroutine (coroutine functions, partials and callables of them)."""
    resolve = getattr(type(task), "_get_current_object", None)
    if resolve is not None:
        # A local proxy (Celery's task proxies, werkzeug's LocalProxy) forwards
        # calls to the object it stands for: judge that object.
        task = resolve(task)
    if inspect.iscoroutinefunction(task):
        return True
    call = getattr(type(task), "__call__", None)  # noqa: B004 - the class's __call__, not callable()
    return call is not None and inspect.iscoroutinefunction(call)


class ReadOnlyDict(dict[str, Any]):
    """A ``dict`` that refuses changes: what ``Intent.kwargs`` and ``dispatch_options`` are.

    Still a real ``dict`` (serializers and ``**`` unpacking treat it as one),
    but every mutating method raises ``TypeError``: an intent is a value, and
    a policy or executor that edited it would change what other code sees.
    """

    __slots__ = ()

    def _readonly(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("an Intent's kwargs and dispatch_options are read-only; build a new mapping")

    __setitem__ = __delitem__ = __ior__ = _readonly
    clear = pop = popitem = setdefault = update = _readonly

    def copy(self) -> dict[str, Any]:
        """A plain, mutable ``dict`` with the same items."""
        return dict(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReadOnlyDict, (dict(self),))

    def __repr__(self) -> str:
        return dict.__repr__(self)


def check_options(options: object, where: str) -> ReadOnlyDict:
    """``_dispatch_options`` as stored on an intent, or ``TypeError`` naming what is wrong."""
    if not isinstance(options, Mapping):
        raise TypeError(
            f"{where} _dispatch_options must be a mapping of option names to values, got {options!r}"
        )
    bad = [key for key in options if not isinstance(key, str)]
    if bad:
        raise TypeError(f"{where} _dispatch_options keys must be str, got {bad[0]!r}")
    return ReadOnlyDict(options)


def check_text(value: object, what: str, where: str) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{where} {what} must be a str (or None), got {value!r} ({type(value).__name__})")


def task_name(task: object) -> str:
    """The short, human name of a task object.

    Celery and Huey tasks carry a dotted ``name``, Dramatiq actors an
    ``actor_name``: the last dotted part of those wins, then ``__name__``,
    then (for a task object whose ``name`` is None) its ``func.__name__``,
    then ``str(task)``.
    """
    for attr in ("name", "actor_name"):
        value = getattr(task, attr, None)
        if isinstance(value, str) and value:
            return value.rpartition(".")[2]
    name = getattr(task, "__name__", None)
    if isinstance(name, str):
        return name
    if getattr(task, "name", "") is None:
        # A task object whose name was left unset (a Huey task declared
        # without name=) is named after the function it wraps.
        name = getattr(getattr(task, "func", None), "__name__", None)
        if isinstance(name, str):
            return name
    return str(task)


class _Meta:
    """The rarely-set parts of an intent, kept out of line.

    Most intents have no explicit name, origin, options, local policies or
    transaction conditions; they all share ``None`` (or their scope's shared
    origin-only ``_Meta``), which keeps a buffered intent small.
    """

    __slots__ = ("name", "origin", "dispatch_options", "local_policies", "conditions")

    def __init__(
        self,
        name: str | None = None,
        origin: str | None = None,
        dispatch_options: ReadOnlyDict | None = None,
        local_policies: tuple[PolicyProtocol, ...] = (),
        conditions: tuple[Callable[[], bool], ...] = (),
    ) -> None:
        self.name = name
        self.origin = origin
        self.dispatch_options = dispatch_options
        self.local_policies = local_policies
        self.conditions = conditions


#: Shared by every intent enqueued without keyword arguments (read-only, so safe to hand out).
NO_KWARGS: dict[str, Any] = ReadOnlyDict()


class Intent:
    """A side effect that domain code asked for, held until a scope decides.

    Intents are read-only values created by [`airlock.enqueue()`][airlock.enqueue]. They are
    deliberately not hashable: their arguments may not be.
    """

    # Four slots keep a buffered intent at about half the memory of a
    # dataclass-style object; see ``_Meta`` for the rest.
    __slots__ = ("_task", "_args", "_kwargs", "_meta")

    _task: Callable[..., Any]
    _args: tuple[Any, ...]
    _kwargs: dict[str, Any]
    _meta: _Meta | None

    __hash__ = None  # type: ignore[assignment]

    def __init__(
        self,
        task: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        origin: str | None = None,
        dispatch_options: Mapping[str, Any] | None = None,
        local_policies: tuple[PolicyProtocol, ...] = (),
    ) -> None:
        check_text(name, "name", "Intent(...)")
        check_text(origin, "origin", "Intent(...)")
        self._task = task
        self._args = tuple(args)
        self._kwargs = dict(kwargs) if kwargs else NO_KWARGS
        options = check_options(dispatch_options, "Intent(...)") if dispatch_options is not None else None
        local_policies = tuple(local_policies)
        if name is None and origin is None and options is None and not local_policies:
            self._meta = None
        else:
            self._meta = _Meta(name, origin, options, local_policies)

    task: Callable[..., Any] = property(attrgetter("_task"), doc="The callable (or task object) to run.")  # type: ignore[assignment]
    args: tuple[Any, ...] = property(attrgetter("_args"), doc="Positional arguments, always a tuple.")  # type: ignore[assignment]

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments, as a read-only ``dict``."""
        kwargs = self._kwargs
        return kwargs if kwargs is NO_KWARGS else ReadOnlyDict(kwargs)

    @property
    def origin(self) -> str | None:
        """Where the intent came from (request path, task name...), if known."""
        meta = self._meta
        return meta.origin if meta is not None else None

    @property
    def dispatch_options(self) -> dict[str, Any] | None:
        """Backend options for the executor (queue, countdown...) as a read-only ``dict``, or ``None``."""
        meta = self._meta
        return meta.dispatch_options if meta is not None else None

    @property
    def local_policies(self) -> tuple[PolicyProtocol, ...]:
        """The ``airlock.policy()`` stack active at enqueue, outermost first."""
        meta = self._meta
        return meta.local_policies if meta is not None else ()

    @property
    def name(self) -> str:
        """``_name`` if given to ``enqueue``, else the task's short name."""
        meta = self._meta
        if meta is not None and meta.name is not None:
            return meta.name
        return task_name(self._task)

    def passes_local_policies(self) -> bool:
        """Whether every ``airlock.policy()`` active at enqueue allows this intent."""
        # Innermost first, stopping at the first refusal.
        return all(p.allows(self) for p in reversed(self.local_policies))

    def add_condition(self, alive: Callable[[], bool]) -> None:
        """Attach a condition that must still hold for the intent to dispatch.

        For scope subclasses that tie intents to a transaction: once ``alive()``
        returns False (the savepoint the intent was enqueued in rolled back),
        the intent is void, whichever scope eventually flushes it.
        """
        meta = self._meta
        if meta is None:
            self._meta = _Meta(conditions=(alive,))
        else:  # copy: a _Meta may be shared by every intent of a scope
            self._meta = _Meta(
                meta.name, meta.origin, meta.dispatch_options, meta.local_policies, (*meta.conditions, alive)
            )

    def _is_void(self) -> bool:
        meta = self._meta
        return meta is not None and not all(alive() for alive in meta.conditions)

    def __str__(self) -> str:
        parts = [repr(a) for a in self._args]
        parts += [f"{k}={v!r}" for k, v in self._kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    def __repr__(self) -> str:
        text = f"<Intent {self.name} args={self._args!r} kwargs={self._kwargs!r}"
        if self.origin is not None:
            text += f" origin={self.origin!r}"
        if self.dispatch_options is not None:
            text += f" dispatch_options={self.dispatch_options!r}"
        return text + ">"
