"""AirlockMiddleware under real server processes: uvicorn and Granian, on 127.0.0.1.

One server process per server kind for the whole module (``web_apps.asgi_app``);
the app records the effects that ran and each scope's outcome in a file that
the tests read (``web_apps.record``). Granian offers ``http.response.pathsend``,
so its ``FileResponse`` completes with that message instead of a body.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from .web_apps.server import Server, serve

DOCUMENT_TEXT = "the receipt, as a file\n"


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp(f"asgi-{request.param}")
    record = workdir / "record.jsonl"
    document = workdir / "receipt.txt"
    document.write_text(DOCUMENT_TEXT)
    env = {"AIRLOCK_WEB_RECORD": str(record), "AIRLOCK_WEB_DOCUMENT": str(document)}
    with serve(request.param, "integrations.web_apps.asgi_app:app", workdir, env) as base:
        yield Server(request.param, base, record)


def test_file_response_completes_the_request_and_its_background_work(server: Server) -> None:
    response = server.get("/file/f1")
    assert response.status_code == 200
    assert response.text == DOCUMENT_TEXT
    if server.kind == "granian":
        assert response.headers["x-pathsend-offered"] == "1"  # the response ended with http.response.pathsend
    ended = server.wait_for_origins("GET /file/f1", "GET /file/f1 (background)")
    assert ended["GET /file/f1"] == {
        "origin": "GET /file/f1",
        "outcome": "flushed",
        "intents": ["effect('f1')"],
    }
    assert ended["GET /file/f1 (background)"]["intents"] == ["effect('f1-bg')"]
    ran = server.effects()
    assert ran.index("f1") < ran.index("f1-bg")


def test_failing_background_task_keeps_the_views_effects(server: Server) -> None:
    response = server.get("/bg-fails/b1")
    assert response.status_code == 200
    ended = server.wait_for_origins("GET /bg-fails/b1", "GET /bg-fails/b1 (background)")
    assert ended["GET /bg-fails/b1"]["outcome"] == "flushed"
    assert ended["GET /bg-fails/b1 (background)"] == {
        "origin": "GET /bg-fails/b1 (background)",
        "outcome": "discarded",
        "intents": ["effect('b1-bg')"],
    }
    ran = server.effects()
    assert "b1" in ran and "b1-bg" not in ran


def test_exception_handler_answering_200_discards_the_views_effects(server: Server) -> None:
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


def test_error_status_discards(server: Server) -> None:
    assert server.get("/gone/g1").status_code == 404
    ended = server.wait_for_origins("GET /gone/g1")
    assert ended["GET /gone/g1"]["outcome"] == "discarded"
    assert "g1" not in server.effects()


def test_hundreds_of_concurrent_requests_never_cross(server: Server) -> None:
    n = 200

    async def drive() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=60) as client:
            return list(await asyncio.gather(*(client.get(f"/ok/c{i}") for i in range(n))))

    responses = asyncio.run(drive())
    assert [r.text for r in responses] == [f"c{i}" for i in range(n)]
    origins = [f"GET /ok/c{i}" for i in range(n)] + [f"GET /ok/c{i} (background)" for i in range(n)]
    ended = server.wait_for_origins(*origins)
    for i in range(n):
        # each scope dispatched exactly its own request's intents
        assert ended[f"GET /ok/c{i}"]["intents"] == [f"effect('c{i}')", f"effect('c{i}-2')"]
        assert ended[f"GET /ok/c{i} (background)"]["intents"] == [f"effect('c{i}-bg')"]
    ran = Counter(tag for tag in server.effects() if tag.startswith("c"))
    assert ran == Counter(tag for i in range(n) for tag in (f"c{i}", f"c{i}-2", f"c{i}-bg"))
