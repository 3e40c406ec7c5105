"""How an intent becomes a row, and a row becomes an intent again.

The task is stored by a stable reference, ``"package.module:qualname"``, that
the relay imports back; arguments, keyword arguments and dispatch options are
stored as JSON. Everything is checked *at enqueue*: a value that would not come
back equal from JSON (a ``datetime``, a ``Decimal``, a tuple, a dict with
integer keys, ``nan``...) is refused at the line that enqueued it, naming the
task and the argument, instead of failing in the relay long after the commit.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .._errors import UsageError
from .._intent import Intent

__all__ = [
    "ORDERING_KEY_OPTION",
    "OutboxSerializationError",
    "Payload",
    "resolve_task",
    "serialize_intent",
    "task_reference",
]

#: Dispatch option read (and removed) by the outbox: rows that share it are
#: dispatched one after the other, in commit order.
ORDERING_KEY_OPTION = "outbox_ordering_key"


class OutboxSerializationError(UsageError, TypeError):
    """An intent that the outbox could not store so that it comes back intact."""


class Payload(NamedTuple):
    """What the outbox stores for one intent (all strings, ready for a row)."""

    task_ref: str
    name: str
    args: str
    kwargs: str
    options: str | None
    ordering_key: str | None
    origin: str | None
    context: str | None = None  # carried context (e.g. traceparent), JSON; see _carriers


def task_reference(task: object) -> str:
    """The import reference (``"module:qualname"``) under which ``task`` can be found again.

    Tried in order: the object's ``__module__``/``__qualname__``, then a
    dotted ``name`` as registered by Celery/Huey-style task objects
    (``"myapp.tasks.send_email"``). A reference is accepted only if importing
    it gives back this very object, so lambdas, closures and nested functions
    are refused (``OutboxSerializationError``) rather than stored under a name
    that would resolve to something else.
    """
    candidates = []
    module = getattr(task, "__module__", None)
    qualname = getattr(task, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        candidates.append(f"{module}:{qualname}")
    name = getattr(task, "name", None)
    if isinstance(name, str) and "." in name:
        mod, _, attr = name.rpartition(".")
        candidates.append(f"{mod}:{attr}")
    if any(ref.startswith("__main__:") for ref in candidates):
        raise OutboxSerializationError(
            f"the outbox cannot store the task {task!r}: it is defined in __main__ (the script being run), "
            "which the relay, another process, can never import; move it into a module and import it from there"
        )
    for ref in candidates:
        try:
            found = resolve_task(ref)
        except (ImportError, AttributeError, ValueError):
            continue
        if found is task:
            return ref
    raise OutboxSerializationError(
        f"the outbox cannot store the task {task!r}: it is not importable by a stable name "
        f"({'tried ' + ', '.join(candidates) if candidates else f'qualified name {qualname!r} in module {module!r}'}); "
        "outbox tasks must be module-level functions or registered task objects, not lambdas or closures"
    )


def resolve_task(ref: str) -> Callable[..., Any]:
    """Import the task stored under ``ref`` (``"module:qualname"``)."""
    module_name, sep, qualname = ref.partition(":")
    if not sep or not module_name or not qualname:
        raise ValueError(f"not a task reference (expected 'module:qualname'): {ref!r}")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{ref!r} resolves to {obj!r}, which is not callable")
    return obj  # type: ignore[no-any-return]


# One encoder for every row: json.dumps() with options builds a new one per call.
_dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode


def _same(a: Any, b: Any) -> bool:
    # Stricter than ==: 1 == 1.0 == True, but JSON keeps them apart, and a
    # tuple compares unequal to the list it comes back as.
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def _encode(value: Any, what: str, intent: Intent) -> str:
    try:
        text = _dumps(value)
    except (TypeError, ValueError) as exc:
        raise OutboxSerializationError(
            f"the outbox cannot store {intent.name}: {what} {value!r} is not JSON ({exc})"
        ) from None
    _check_text(text, f"{what} {value!r}", intent)
    if not _same(json.loads(text), value):
        raise OutboxSerializationError(
            f"the outbox cannot store {intent.name}: {what} {value!r} would not come back the same from JSON "
            f"(it would read {json.loads(text)!r}); pass lists, dicts with string keys, str, int, float, bool or None"
        )
    return text


def _check_text(text: str | None, what: str, intent: Intent) -> None:
    # A lone surrogate ("\udc80", what os.fsdecode makes of undecodable bytes)
    # is a valid Python str but no database column can hold it: refuse it
    # here rather than in the INSERT at commit.
    if text is not None and not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise OutboxSerializationError(
                f"the outbox cannot store {intent.name}: {what} holds a string that cannot be encoded "
                f"as UTF-8 ({exc.reason} at position {exc.start}), e.g. a lone surrogate"
            ) from None


def _check_column(text: str | None, what: str, intent: Intent) -> None:
    """`_check_text`, for a string stored as it is in its own column (not inside JSON, which
    escapes a NUL): a NUL character, which no database's text column takes, is refused too."""
    if text is not None and "\x00" in text:
        raise OutboxSerializationError(
            f"the outbox cannot store {intent.name!r}: {what} holds a NUL character (\\x00), "
            "which no database text column can hold"
        )
    _check_text(text, what, intent)


def _plain(values: Any) -> bool:
    """Whether every value is one JSON keeps exactly as it is, without a round trip to prove it
    (str, int, bool, None, a finite float): the common case, checked with no call per value."""
    for value in values:
        kind = type(value)
        if kind is str or kind is int or value is None or kind is bool:
            continue
        if kind is float and math.isfinite(value):
            continue
        return False
    return True


def _group(values: Any, describe: Callable[[Any], str], intent: Intent) -> str:
    """Encode a tuple/list/dict of values at once (a tuple as a JSON array); on any doubt,
    check value by value to name the culprit.

    ``describe(index or key)`` names a value in an error message (only asked then).
    """
    is_dict = isinstance(values, dict)
    if _plain(values.values() if is_dict else values):
        text = _dumps(values)
        if not text.isascii():
            for where, value in values.items() if is_dict else enumerate(values):
                if isinstance(value, str):
                    _check_text(value, f"{describe(where)} {value!r}", intent)
        return text
    for where, value in values.items() if is_dict else enumerate(values):
        _encode(value, describe(where), intent)  # raises, naming the value, if it cannot be stored
    return _dumps(values)


def _argument(index: int) -> str:
    return f"argument {index}"


def _keyword(key: str) -> str:
    return f"keyword argument {key!r}"


def _option(key: str) -> str:
    return f"dispatch option {key!r}"


def serialize_intent(intent: Intent, refs: dict[int, tuple[object, str]] | None = None) -> Payload:
    """Check and encode ``intent``; raise [`OutboxSerializationError`][airlock.outbox.OutboxSerializationError] naming what cannot be stored.

    ``refs`` remembers the task references found so far (``id(task) -> (task,
    reference)``): an outbox scope passes its own, so a loop enqueueing one
    task imports it back once per scope, and nothing outlives the scope.
    """
    task = intent.task
    found = refs.get(id(task)) if refs is not None else None
    if found is not None and found[0] is task:
        ref = found[1]
    else:
        ref = task_reference(task)
        if refs is not None:
            refs[id(task)] = (task, ref)
    args_text = _group(intent.args, _argument, intent)  # a tuple: stored as a JSON array
    kwargs = intent.kwargs
    kwargs_text = _group(kwargs, _keyword, intent) if kwargs else "{}"
    options = dict(intent.dispatch_options) if intent.dispatch_options is not None else None
    ordering_key = None
    options_text = None
    if options is not None:
        key = options.pop(ORDERING_KEY_OPTION, None)
        if key is not None:
            if not isinstance(key, str) or not key or len(key) > 200:
                raise OutboxSerializationError(
                    f"the outbox cannot store {intent.name}: dispatch option {ORDERING_KEY_OPTION!r} must be "
                    f"a non-empty string of at most 200 characters, got {key!r}"
                )
            _check_column(key, f"dispatch option {ORDERING_KEY_OPTION!r}", intent)
            ordering_key = key
        if options:
            options_text = _group(options, _option, intent)
    name = intent.name
    origin = intent.origin
    _check_column(name, "the name", intent)
    _check_column(origin, "the origin", intent)
    # The name column holds 200 characters: a longer name is stored cut (it only labels the row).
    return Payload(ref, name[:200], args_text, kwargs_text, options_text, ordering_key, origin)


def deserialize(
    args: str, kwargs: str, options: str | None
) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """The stored arguments, keyword arguments and dispatch options, decoded."""
    opts: Mapping[str, Any] = json.loads(options) if options else {}
    # "{}" is what almost every row holds: skip the decoder for it.
    return json.loads(args), {} if kwargs == "{}" else json.loads(kwargs), dict(opts)
