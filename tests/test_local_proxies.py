"""enqueue judges a local proxy (``_get_current_object``) by the object it stands for.

Celery's ``@app.task`` returns such a proxy; werkzeug's LocalProxy is another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import airlock


class Proxy:
    """The local-proxy protocol: forward calls to ``_get_current_object()``."""

    def __init__(self, target: Callable[..., Any]) -> None:
        self._target = target

    def _get_current_object(self) -> Callable[..., Any]:
        return self._target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target(*args, **kwargs)


async def notify_async(x: int) -> None:
    return None


def test_proxy_to_a_coroutine_function_is_refused_by_a_sync_scope() -> None:
    with airlock.scope() as scope:
        with pytest.raises(airlock.UsageError, match="coroutine function"):
            airlock.enqueue(Proxy(notify_async), 1, _name="notify_async")
        assert scope.intents == []


def test_proxy_to_a_coroutine_function_is_awaited_by_an_async_scope() -> None:
    seen: list[int] = []

    async def remember(x: int) -> None:
        seen.append(x)

    async def unit_of_work() -> None:
        async with airlock.scope():
            airlock.enqueue(Proxy(remember), 2)

    asyncio.run(unit_of_work())
    assert seen == [2]


def test_proxy_to_a_plain_function_runs() -> None:
    seen: list[int] = []
    with airlock.scope():
        airlock.enqueue(Proxy(seen.append), 3)
    assert seen == [3]


def test_celery_task_proxy_is_a_plain_task() -> None:
    from celery import Celery

    app = Celery("airlock_proxy_test", broker="memory://", set_as_current=False)
    ran: list[int] = []

    @app.task(name="airlock_proxy_test.t", shared=False)
    def t(x: int) -> None:
        ran.append(x)

    assert hasattr(type(t), "_get_current_object")  # what @app.task returns is a proxy
    with airlock.scope():
        airlock.enqueue(t, 4)
    assert ran == [4]
