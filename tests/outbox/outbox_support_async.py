"""A coroutine task for the relay test (kept apart so the sync support module stays sync)."""

from __future__ import annotations

import asyncio

from outbox_support import seen


async def arecord(n: int) -> None:
    await asyncio.sleep(0)
    seen.append(("async", n))


async def acancelled(n: int) -> None:
    await asyncio.sleep(0)
    raise asyncio.CancelledError(f"cancelled {n}")
