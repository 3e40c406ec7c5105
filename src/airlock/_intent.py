"""The :class:`Intent`: a side effect that has been asked for but not yet run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._policies import Policy

__all__ = ["Intent", "task_name"]


def task_name(task: object) -> str:
    """The short, human name of a task object.

    Celery and Huey tasks carry a dotted ``name``, Dramatiq actors an
    ``actor_name``: the last dotted part of those wins, then ``__name__``,
    then the ``__name__`` of a wrapped ``.func`` (Huey's TaskWrapper,
    ``functools.partial``), then ``str(task)``.
    """
    for attr in ("name", "actor_name"):
        value = getattr(task, attr, None)
        if isinstance(value, str) and value:
            return value.rpartition(".")[2]
    name = getattr(task, "__name__", None)
    if isinstance(name, str):
        return name
    # Wrappers that keep the function as ``.func`` (Huey 2.5+/3 TaskWrapper,
    # functools.partial) are named after it.
    name = getattr(getattr(task, "func", None), "__name__", None)
    if isinstance(name, str):
        return name
    return str(task)


def _read_only(slot: str, doc: str) -> Any:
    # A C-level getter and no setter: assigning raises AttributeError, and
    # reading costs one call. The data lives in the private slot.
    return property(attrgetter(slot), doc=doc)


class Intent:
    """A side effect that domain code asked for, held until a scope decides.

    Intents are read-only values created by :func:`airlock.enqueue`. They are
    deliberately not hashable: their arguments may not be.
    """

    # Every field lives in a private slot behind a read-only property: plain
    # slot assignment keeps construction (once per ``enqueue``) cheap.
    # ``_conditions`` holds zero-argument callables attached at enqueue time by
    # scope subclasses ("the savepoint this intent was enqueued in has not
    # rolled back"); once one turns false the intent is void and no scope
    # dispatches it.
    __slots__ = (
        "_task",
        "_args",
        "_kwargs",
        "_origin",
        "_dispatch_options",
        "_local_policies",
        "_name",
        "_conditions",
    )

    _task: Callable[..., Any]
    _args: tuple[Any, ...]
    _kwargs: dict[str, Any]
    _origin: str | None
    _dispatch_options: dict[str, Any] | None
    _local_policies: tuple[Policy, ...]
    _name: str | None
    _conditions: tuple[Callable[[], bool], ...]

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
        local_policies: tuple[Policy, ...] = (),
    ) -> None:
        self._task = task
        self._args = tuple(args)
        self._kwargs = dict(kwargs) if kwargs else {}
        self._origin = origin
        self._dispatch_options = (
            dict(dispatch_options) if dispatch_options is not None else None
        )
        self._local_policies = tuple(local_policies)
        self._name = name
        self._conditions = ()

    task: Callable[..., Any] = _read_only("_task", "The callable (or task object) to run.")
    args: tuple[Any, ...] = _read_only("_args", "Positional arguments, always a tuple.")
    kwargs: dict[str, Any] = _read_only("_kwargs", "Keyword arguments.")
    origin: str | None = _read_only(
        "_origin", "Where the intent came from (request path, task name...), if known."
    )
    dispatch_options: dict[str, Any] | None = _read_only(
        "_dispatch_options", "Backend options for the executor (queue, countdown...)."
    )
    local_policies: tuple[Policy, ...] = _read_only(
        "_local_policies", "The ``airlock.policy()`` stack active at enqueue, outermost first."
    )

    @property
    def name(self) -> str:
        """``_name`` if given to ``enqueue``, else the task's short name."""
        name = self._name
        if name is None:
            name = self._name = task_name(self._task)
        return name

    def passes_local_policies(self) -> bool:
        """Whether every ``airlock.policy()`` active at enqueue allows this intent."""
        return all(p.allows(self) for p in self._local_policies)

    def _add_condition(self, alive: Callable[[], bool]) -> None:
        """Attach a condition that must still hold for the intent to dispatch.

        For scope subclasses that tie intents to a transaction: when the
        savepoint an intent was enqueued in rolls back, the intent is void no
        matter which scope eventually flushes it.
        """
        self._conditions = (*self._conditions, alive)

    def _is_void(self) -> bool:
        return not all(alive() for alive in self._conditions)

    def __str__(self) -> str:
        parts = [repr(a) for a in self._args]
        parts += [f"{k}={v!r}" for k, v in self._kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    def __repr__(self) -> str:
        text = f"<Intent {self.name} args={self._args!r} kwargs={self._kwargs!r}"
        if self._origin is not None:
            text += f" origin={self._origin!r}"
        if self._dispatch_options is not None:
            text += f" dispatch_options={self._dispatch_options!r}"
        return text + ">"


_new = object.__new__


def _new_intent(
    task: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    name: str | None,
    origin: str | None,
    dispatch_options: dict[str, Any] | None,
    local_policies: tuple[Policy, ...],
) -> Intent:
    """The hot-path constructor used by ``enqueue``.

    Its arguments are already fresh objects of the right types (``enqueue``
    owns its ``*args``/``**kwargs``), so nothing is copied or checked again.
    """
    intent: Intent = _new(Intent)
    intent._task = task
    intent._args = args
    intent._kwargs = kwargs
    intent._origin = origin
    intent._dispatch_options = dispatch_options
    intent._local_policies = local_policies
    intent._name = name
    intent._conditions = ()
    return intent
