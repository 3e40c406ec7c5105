"""A Huey executor for the demo: hand each intent to the Huey queue.

A Huey task (``@huey.task()``) is enqueued with its arguments (or scheduled
with the intent's dispatch options, e.g. ``delay=``); a plain function is
simply called.
"""

from __future__ import annotations

from typing import Any

from huey.api import TaskWrapper

from airlock import Intent


def huey_executor(intent: Intent) -> Any:
    task = intent.task
    if isinstance(task, TaskWrapper):
        if intent.dispatch_options:
            return task.schedule(args=intent.args, kwargs=intent.kwargs, **intent.dispatch_options)
        return task(*intent.args, **intent.kwargs)
    return task(*intent.args, **intent.kwargs)
