"""What a served app did, written where the test process can read it.

Each line of the file named by ``AIRLOCK_WEB_RECORD`` is a JSON object: an
effect that ran (``{"effect": tag}``) or a scope that ended
(``{"origin": ..., "outcome": "flushed" | "discarded", "intents": [...]}``,
the intents that scope dispatched or dropped). Lines are appended with one
``write`` on a file opened in append mode, so concurrent workers never mix them.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import airlock
from airlock.integrations.asgi import ASGIScope

_lock = threading.Lock()


def write(entry: dict[str, Any]) -> None:
    line = json.dumps(entry) + "\n"
    with _lock, open(os.environ["AIRLOCK_WEB_RECORD"], "a", encoding="utf-8") as file:
        file.write(line)


def effect(tag: str) -> None:
    """The task the apps enqueue: records that it ran."""
    write({"effect": tag, "pid": os.getpid()})


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _ended(scope: airlock.Scope, outcome: str, intents: list[airlock.Intent]) -> None:
    write({"origin": scope.origin, "outcome": outcome, "intents": [str(i) for i in intents]})


class RecordingASGIScope(ASGIScope):
    """An ASGIScope that records its outcome and the intents it dispatched or dropped."""

    async def aflush(self) -> list[airlock.Intent]:
        dispatched = await super().aflush()
        _ended(self, "flushed", dispatched)
        return dispatched

    def discard(self) -> list[airlock.Intent]:
        dropped = super().discard()
        _ended(self, "discarded", dropped)
        return dropped


class RecordingScope(airlock.Scope):
    """The same for a synchronous (Flask) request scope."""

    def flush(self) -> list[airlock.Intent]:
        dispatched = super().flush()
        _ended(self, "flushed", dispatched)
        return dispatched

    def discard(self) -> list[airlock.Intent]:
        dropped = super().discard()
        _ended(self, "discarded", dropped)
        return dropped
