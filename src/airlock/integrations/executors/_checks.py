"""Enqueue-time checks shared by the executors that send work to a broker.

An executor whose backend serializes arguments offers ``validate(intent)``;
airlock runs it at the ``enqueue`` line. These helpers make the two checks
every such backend needs: the dispatch option names are ones the backend
knows, and every argument survives the backend's serializer. Both raise a
``TypeError`` naming the task and the offending option or argument.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterator
from typing import Any

from ..._intent import Intent

__all__ = ["check_option_names", "check_serializable", "check_importable"]


def check_option_names(intent: Intent, backend: str, known: Collection[str]) -> None:
    """Raise ``TypeError`` if ``intent.dispatch_options`` has a name ``backend`` does not know."""
    options = intent.dispatch_options
    if not options:
        return
    unknown = [name for name in options if name not in known]
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise TypeError(
        f"unknown {backend} dispatch option {name!r} for task {intent.name}{hint}; "
        f"known options: {', '.join(sorted(known))}"
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
        dumps((intent.args, intent.kwargs))
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


def check_importable(intent: Intent, backend: str, func: Callable[..., Any]) -> None:
    """Raise ``TypeError`` if a worker could not import ``func`` by its dotted name."""
    qualname = getattr(func, "__qualname__", None)
    module = getattr(func, "__module__", None)
    if not isinstance(qualname, str) or not isinstance(module, str) or "<" in qualname:
        raise TypeError(
            f"cannot enqueue {intent.name} on {backend}: a worker finds the task by its import path, "
            f"and {func!r} has none (lambdas, nested functions and callable instances cannot be sent); "
            "define the task at module level"
        )
    if module == "__main__":
        raise TypeError(
            f"cannot enqueue {intent.name} on {backend}: it is defined in __main__, which a worker cannot import; "
            "move it to a module"
        )


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
