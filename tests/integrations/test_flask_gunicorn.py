"""The Flask extension under a real gunicorn process (2 gthread workers, 8 threads each) on 127.0.0.1.

The app (``web_apps.flask_app``) records the effects that ran and each request
scope's outcome in a file the tests read (``web_apps.record``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from .web_apps.server import Server, serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("gunicorn")
    record = workdir / "record.jsonl"
    with serve(
        "gunicorn", "integrations.web_apps.flask_app:app", workdir, {"AIRLOCK_WEB_RECORD": str(record)}
    ) as base:
        yield Server("gunicorn", base, record)


def test_success_flushes_and_error_statuses_discard(server: Server) -> None:
    assert server.get("/ok/o1").text == "o1"
    assert server.get("/gone/g1").status_code == 404
    assert server.get("/raise/r1").status_code == 500
    ended = server.wait_for_origins("GET /ok/o1", "GET /gone/g1", "GET /raise/r1")
    assert ended["GET /ok/o1"] == {
        "origin": "GET /ok/o1",
        "outcome": "flushed",
        "intents": ["effect('o1')", "effect('o1-2')"],
    }
    assert ended["GET /gone/g1"]["outcome"] == "discarded"
    assert ended["GET /raise/r1"]["outcome"] == "discarded"
    ran = server.effects()
    assert "o1" in ran and "g1" not in ran and "r1" not in ran


def test_errorhandler_answering_200_discards_the_views_effects(server: Server) -> None:
    response = server.get("/handled/h1")
    assert response.status_code == 200
    assert response.json() == {"out_of_stock": "h1"}
    ended = server.wait_for_origins("GET /handled/h1")
    assert ended["GET /handled/h1"] == {
        "origin": "GET /handled/h1",
        "outcome": "discarded",
        "intents": ["effect('h1')"],
    }
    assert "h1" not in server.effects()


def test_streamed_response_flushes(server: Server) -> None:
    assert server.get("/stream/s1").text == "a;b;"
    ended = server.wait_for_origins("GET /stream/s1")
    assert ended["GET /stream/s1"]["outcome"] == "flushed"
    assert "s1" in server.effects()


def test_hundreds_of_concurrent_requests_never_cross(server: Server) -> None:
    n = 200

    async def drive() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=60) as client:
            return list(await asyncio.gather(*(client.get(f"/ok/c{i}") for i in range(n))))

    responses = asyncio.run(drive())
    assert [r.text for r in responses] == [f"c{i}" for i in range(n)]
    ended = server.wait_for_origins(*(f"GET /ok/c{i}" for i in range(n)))
    for i in range(n):
        assert ended[f"GET /ok/c{i}"]["intents"] == [f"effect('c{i}')", f"effect('c{i}-2')"]
    ran = Counter(tag for tag in server.effects() if tag.startswith("c"))
    assert ran == Counter(tag for i in range(n) for tag in (f"c{i}", f"c{i}-2"))
