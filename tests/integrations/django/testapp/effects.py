"""The side effects the tests enqueue: each records that it ran, and whether the
default database was still inside a transaction when it did."""

from __future__ import annotations

import threading

from django.db import connections

RAN: list[tuple[str, bool]] = []
THREADS: dict[str, int] = {}


def record(label: str) -> None:
    RAN.append((label, connections["default"].in_atomic_block))


async def arecord(label: str) -> None:
    RAN.append((label, connections["default"].in_atomic_block))


def labels() -> list[str]:
    return [label for label, _ in RAN]


def note_thread(name: str) -> None:
    THREADS[name] = threading.get_ident()
