"""Tasks and executors the outbox tests (and their relay subprocesses) import by name."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from airlock import Intent
from airlock.outbox import current_outbox_id

seen: list[tuple[Any, ...]] = []


def record(n: int, label: str = "") -> None:
    """A plain task: remembers its call in-process."""
    seen.append((n, label))


def record_with_id(n: int, airlock_outbox_id: str | None = None) -> None:
    """A plain task that asks for its idempotency key."""
    seen.append((n, airlock_outbox_id))


def poison(n: int) -> None:
    raise RuntimeError(f"poison {n} always fails")


class FakeBackendTask:
    """A task object shaped like a Celery task (``apply_async`` and a dotted ``name``)."""

    name = "outbox_support.backend_task"

    def __call__(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - never run directly
        raise AssertionError("the relay must go through apply_async")

    def apply_async(self, args: Any = (), kwargs: Any = None, **options: Any) -> None:
        seen.append(("apply_async", tuple(args), kwargs, options))


backend_task = FakeBackendTask()


def backend_executor(intent: Intent) -> None:
    """The Celery executor contract: ``task.apply_async(args=, kwargs=, **dispatch_options)``."""
    intent.task.apply_async(args=intent.args, kwargs=intent.kwargs, **(intent.dispatch_options or {}))


# -- for relay subprocesses ----------------------------------------------------------

_log_fd: int | None = None
_count = 0


def log_executor(intent: Intent) -> None:
    """Append ``<row id> <pid>`` to $AIRLOCK_OUTBOX_LOG (O_APPEND: one atomic write per dispatch).

    With $AIRLOCK_OUTBOX_HANG_AFTER=K, after K dispatches it touches
    $AIRLOCK_OUTBOX_HANG_MARKER and hangs, so a test can kill the relay in
    the middle of a batch whose first K rows are published but not recorded.
    """
    global _log_fd, _count
    if _log_fd is None:
        _log_fd = os.open(os.environ["AIRLOCK_OUTBOX_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    hang_after = int(os.environ.get("AIRLOCK_OUTBOX_HANG_AFTER", "0"))
    if hang_after and _count >= hang_after:
        Path(os.environ["AIRLOCK_OUTBOX_HANG_MARKER"]).touch()
        while True:
            time.sleep(60)
    slow = float(os.environ.get("AIRLOCK_OUTBOX_SLOW", "0"))
    if slow:
        Path(os.environ["AIRLOCK_OUTBOX_SLOW_MARKER"]).touch()
        time.sleep(slow)
    os.write(_log_fd, f"{current_outbox_id()} {os.getpid()}\n".encode())
    _count += 1


# The relay tests publish through the library's own celery executor.
from airlock.integrations.executors.celery import celery_executor  # noqa: E402,F401

# -- tasks that raise what is not an Exception, or end the process ------------------


def exits(n: int) -> None:
    raise SystemExit(n)


def interrupts(n: int) -> None:
    raise KeyboardInterrupt(f"interrupted {n}")


def cancelled(n: int) -> None:
    import asyncio

    raise asyncio.CancelledError(f"cancelled {n}")


def kill_own_process(n: int) -> None:
    """Ends the relay that runs it, as a segfaulting extension or an OOM kill would."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def log_label(intent: Intent) -> None:
    """Executor: append the intent's ``label`` to labels.log next to $AIRLOCK_OUTBOX_LOG."""
    path = Path(os.environ["AIRLOCK_OUTBOX_LOG"]).with_name("labels.log")
    with open(path, "a") as log:
        log.write(f"{intent.kwargs['label']}\n")
