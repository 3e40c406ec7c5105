"""Enqueue-time checks shared by the executors that send work to a broker.

An executor whose backend serializes arguments offers ``validate(intent)``;
airlock runs it at the ``enqueue`` line, so an intent the backend could never
send fails there and not after the transaction committed. The checks here
refuse only what the backend itself would refuse: arguments its serializer
cannot encode, a task its workers cannot import, an option value of a type it
rejects. They never refuse a dispatch option because its *name* is not on a
list: options go to the backend untouched, and the backend decides.
Every check raises ``TypeError`` naming the task and the offending value.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..._intent import Intent

__all__ = [
    "check_importable",
    "check_option_type",
    "check_options_serializable",
    "check_serializable",
    "check_task_sendable",
]


def check_option_type(intent: Intent, backend: str, name: str, expected: tuple[type, ...], what: str) -> None:
    """Raise ``TypeError`` if dispatch option ``name`` is set to a value not of the ``expected`` types.

    ``what`` describes the accepted values for the message (``"a datetime"``).
    An absent option, or one set to ``None`` (the backend's own default), passes.
    """
    options = intent.dispatch_options
    if not options:
        return
    value = options.get(name)
    if value is None or (isinstance(value, expected) and not isinstance(value, bool)):
        return
    raise TypeError(
        f"cannot enqueue {intent.name}: {backend} needs {what} as the {name!r} dispatch option, "
        f"got {_short_repr(value)} ({type(value).__name__})"
    )


def _arguments(intent: Intent) -> Iterator[tuple[str, Any]]:
    for index, value in enumerate(intent.args):
        yield f"positional argument {index}", value
    for key, value in intent.kwargs.items():
        yield f"keyword argument {key!r}", value


# Values every serializer a task queue uses (JSON, pickle, msgpack, YAML) encodes.
_PLAIN = frozenset({int, str, float, bool, type(None)})


def check_serializable(intent: Intent, serializer: str, dumps: Callable[[Any], object]) -> None:
    """Raise ``TypeError`` naming the first argument ``dumps`` cannot encode.

    ``dumps`` is the backend's own encoder; ``serializer`` names it in the
    message. Arguments that are all plain scalars (ids, strings: the common
    case) pass without encoding anything; otherwise the whole payload is
    tried once, and only on failure is each argument tried alone to find the
    culprit.
    """
    plain = _PLAIN
    if all(type(a) in plain for a in intent.args) and all(type(v) in plain for v in intent.kwargs.values()):
        return
    try:
        dumps((intent.args, dict(intent.kwargs)))
        return
    except Exception as whole:  # noqa: BLE001 - any encoder failure means "cannot send"
        failure: BaseException = whole
    for label, value in _arguments(intent):
        try:
            dumps(value)
        except Exception as exc:  # noqa: BLE001
            raise TypeError(
                f"cannot enqueue {intent.name}: its {label} ({_short_repr(value)}) cannot be serialized "
                f"by the {serializer} serializer ({exc}); pass something it can encode, "
                f"e.g. a primary key instead of a model instance"
            ) from exc
    raise TypeError(
        f"cannot enqueue {intent.name}: its arguments cannot be serialized by the {serializer} serializer "
        f"({failure})"
    ) from failure


def check_options_serializable(
    intent: Intent, serializer: str, dumps: Callable[[Any], object], options: Mapping[str, Any] | None = None
) -> None:
    """Raise ``TypeError`` naming the first dispatch option ``dumps`` cannot encode.

    For backends that store the options in the message next to the arguments.
    ``options`` defaults to all of ``intent.dispatch_options``.
    """
    if options is None:
        options = intent.dispatch_options
    if not options:
        return
    for name, value in options.items():
        if type(value) in _PLAIN:
            continue
        try:
            dumps(value)
        except Exception as exc:  # noqa: BLE001
            raise TypeError(
                f"cannot enqueue {intent.name}: its dispatch option {name!r} ({_short_repr(value)}) cannot be "
                f"serialized by the {serializer} serializer ({exc})"
            ) from exc


def check_importable(intent: Intent, backend: str, func: Callable[..., Any]) -> None:
    """Raise ``TypeError`` if a worker could not import the function ``func`` by its dotted name."""
    qualname = getattr(func, "__qualname__", None)
    module = getattr(func, "__module__", None)
    if not isinstance(qualname, str) or not isinstance(module, str) or "<" in qualname:
        raise TypeError(
            f"cannot enqueue {intent.name} on {backend}: a worker finds the task by its import path, "
            f"and {func!r} has none (lambdas and nested functions cannot be sent); "
            "define the task at module level"
        )
    if module == "__main__":
        raise TypeError(
            f"cannot enqueue {intent.name} on {backend}: it is defined in __main__, which a worker cannot import; "
            "move it to a module"
        )


def check_task_sendable(intent: Intent, backend: str, dumps: Callable[[Any], object] | None) -> None:
    """Raise ``TypeError`` unless a worker could receive ``intent.task``.

    Functions travel by their import path (no lambdas, nested functions or
    ``__main__``); any other callable (a method, a callable instance) travels
    by value, so it must survive the backend's serializer ``dumps`` (not
    checked when ``dumps`` is ``None``).
    """
    task = intent.task
    if isinstance(task, types.FunctionType):
        check_importable(intent, backend, task)
        return
    if isinstance(task, types.BuiltinFunctionType) or dumps is None:
        return
    try:
        dumps(task)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(
            f"cannot enqueue {intent.name} on {backend}: the task {_short_repr(task)} cannot be serialized "
            f"to reach a worker ({exc}); use a module-level function"
        ) from exc


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
