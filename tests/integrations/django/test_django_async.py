"""AirlockMiddleware under Django's async stack: AsyncClient and a real ASGI handler."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.db import connections
from django.test import AsyncClient

from integrations.django.testapp.effects import THREADS, labels

pytestmark = pytest.mark.django_db(transaction=True)

RECORDING_MW = "integrations.django.testapp.middleware.ThreadRecordingAirlockMiddleware"


@pytest.fixture(autouse=True)
def _close_connections_of_sync_to_async_thread() -> Iterator[None]:
    # The views' sync_to_async helpers query from asgiref's worker thread;
    # close its connections so the test database can be dropped.
    yield
    asyncio.run(sync_to_async(connections.close_all)())


def test_async_view_flushes_coroutine_and_helper_intents_in_order(
    async_client: AsyncClient, ran: list[tuple[str, bool]]
) -> None:
    response = asyncio.run(async_client.get("/async/200/"))
    assert response.status_code == 200
    # The enqueue made inside sync_to_async() landed in the request's scope.
    assert response.content.decode() == "arecord('async-200') record('helper-200')"
    assert labels() == ["async-200", "helper-200"]
    assert response.asgi_request.airlock_scope.origin == "GET /async/200/"


@pytest.mark.parametrize("status", [404, 500])
def test_async_view_error_status_discards(
    async_client: AsyncClient, ran: list[tuple[str, bool]], status: int
) -> None:
    response = asyncio.run(async_client.get(f"/async/{status}/"))
    assert response.status_code == status
    assert ran == []
    assert response.asgi_request.airlock_scope.is_discarded


def test_async_view_exception_discards_and_propagates(
    async_client: AsyncClient, ran: list[tuple[str, bool]]
) -> None:
    with pytest.raises(RuntimeError, match="async view exploded"):
        asyncio.run(async_client.get("/async/explode/"))
    assert ran == []


def test_no_thread_hop_the_scope_is_made_on_the_views_event_loop_thread(
    settings: Any, ran: list[tuple[str, bool]]
) -> None:
    settings.MIDDLEWARE = [RECORDING_MW]
    response = asyncio.run(AsyncClient().get("/async/200/"))
    assert response.status_code == 200
    # A sync-only middleware would be run by Django in a worker thread.
    assert THREADS["middleware"] == THREADS["view"]
    assert labels() == ["async-200", "helper-200"]


def test_through_djangos_asgi_handler(ran: list[tuple[str, bool]]) -> None:
    sent: list[dict[str, Any]] = []

    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client stays connected; Django cancels this
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/async/201/",
        "raw_path": b"/async/201/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    asyncio.run(ASGIHandler()(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 201
    assert labels() == ["async-201", "helper-201"]
