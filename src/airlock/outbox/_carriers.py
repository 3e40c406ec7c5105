"""Context that travels with an intent through the outbox (e.g. an OpenTelemetry ``traceparent``).

A *carrier* captures a small ``dict[str, str]`` when an intent is enqueued into
an outbox scope and, in the relay, restores it around the dispatch of that
row. The outbox knows no tracing library: ``airlock.integrations.otel.install()``
registers its carrier here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Protocol

__all__ = ["ContextCarrier", "add_carrier", "capture_context", "remove_carrier", "restored_context"]


class ContextCarrier(Protocol):
    """Captures context at enqueue and restores it around the relayed dispatch."""

    name: str

    def capture(self) -> dict[str, str] | None:
        """The context to store with the row (``None``: nothing to carry)."""
        ...

    def restore(self, carried: dict[str, str], task_name: str) -> AbstractContextManager[object]:
        """A context manager the relay runs the row's dispatch in."""
        ...


_carriers: list[ContextCarrier] = []


def add_carrier(carrier: ContextCarrier) -> None:
    """Register ``carrier`` (replacing one with the same ``name``)."""
    remove_carrier(carrier.name)
    _carriers.append(carrier)


def remove_carrier(name: str) -> None:
    _carriers[:] = [c for c in _carriers if c.name != name]


def capture_context() -> str | None:
    """The JSON stored in a row's ``context`` column, or ``None`` (no carrier, nothing to carry)."""
    if not _carriers:
        return None
    found = {}
    for carrier in _carriers:
        carried = carrier.capture()
        if carried:
            found[carrier.name] = carried
    return json.dumps(found, separators=(",", ":")) if found else None


@contextmanager
def restored_context(context: str | None, task_name: str) -> Iterator[None]:
    """Run the block inside every registered carrier's restored context of ``context``."""
    if not context or not _carriers:
        yield
        return
    carried = json.loads(context)
    with ExitStack() as stack:
        for carrier in _carriers:
            value = carried.get(carrier.name)
            if value:
                stack.enter_context(carrier.restore(value, task_name))
        yield
