"""The default executor: call the task in-process, right away."""

from __future__ import annotations

from typing import Any

from ..._intent import Intent

__all__ = ["sync_executor"]


def sync_executor(intent: Intent) -> Any:
    """Call ``intent.task(*intent.args, **intent.kwargs)`` and return its result.

    A coroutine function's result is a coroutine; an async scope awaits it.
    A Django task object (not callable) runs in-process with its ``.call()``.
    """
    task = intent._task
    if not callable(task):
        task = task.call
    return task(*intent._args, **intent._kwargs)
