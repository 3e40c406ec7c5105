"""AirlockMiddleware against real Starlette and FastAPI apps.

Every behaviour runs through httpx's ASGI transport for both frameworks, and
once more end to end under a real uvicorn server on 127.0.0.1 (including a
client that really hangs up mid-stream).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi import HTTPException as FastAPIHTTPException
from fastapi import Request as FastAPIRequest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import airlock
from airlock.integrations.asgi import AirlockMiddleware, ASGIScope

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"airlock_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # SQLAlchemy and dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


# -- what the apps do -----------------------------------------------------------------------

EFFECTS: list[tuple[str, str, int]] = []  # (tag, kind, thread id), appended by the tasks
OUTCOMES: list[tuple[str, str]] = []  # (origin, "flushed"/"discarded"), appended by RecordingScope
SENT_MESSAGES: list[dict[str, Any]] = []  # what the outermost layer saw the app send


@pytest.fixture(autouse=True)
def _clean_records() -> Iterator[None]:
    EFFECTS.clear()
    OUTCOMES.clear()
    SENT_MESSAGES.clear()
    yield


def sync_effect(tag: str) -> None:
    EFFECTS.append((tag, "sync", threading.get_ident()))


async def async_effect(tag: str) -> None:
    await asyncio.sleep(0)
    EFFECTS.append((tag, "async", threading.get_ident()))


def snapshot_sent(tag: str) -> None:
    """Records whether the final body chunk had been sent when the task ran."""
    final_sent = any(
        m["type"] == "http.response.body" and not m.get("more_body", False) for m in SENT_MESSAGES
    )
    EFFECTS.append((tag, f"final-sent={final_sent}", threading.get_ident()))


def failing_effect(tag: str) -> None:
    raise ConnectionError(f"mail server down for {tag}")


class RecordingScope(ASGIScope):
    """Records each request scope's outcome, so tests can wait for it under a real server."""

    async def aflush(self) -> list[airlock.Intent]:
        try:
            return await super().aflush()
        finally:
            OUTCOMES.append((self.origin or "", "flushed"))

    def discard(self) -> list[airlock.Intent]:
        dropped = super().discard()
        OUTCOMES.append((self.origin or "", "discarded"))
        return dropped


def request_outcomes() -> list[tuple[str, str]]:
    """The request scopes' outcomes (not those of the scopes for work after the response)."""
    return [outcome for outcome in OUTCOMES if not outcome[0].endswith("(background)")]


def tags(kind: str | None = None) -> list[str]:
    return [tag for tag, k, _ in EFFECTS if kind is None or k == kind]


def intents_payload(scope: airlock.Scope) -> dict[str, Any]:
    return {"intents": [str(i) for i in scope.intents], "loop_thread": threading.get_ident()}


async def stream_chunks(tag: str) -> AsyncIterator[bytes]:
    for n in range(3):
        airlock.enqueue(sync_effect, f"{tag}-{n}")
        await asyncio.sleep(0)
        yield f"chunk{n};".encode()
    airlock.enqueue(snapshot_sent, tag)


async def hang_after_first_chunk(tag: str) -> AsyncIterator[bytes]:
    airlock.enqueue(sync_effect, tag)
    yield b"first;"
    await asyncio.Event().wait()  # never set: only a disconnect ends this response
    yield b"never"


# -- the same routes in Starlette and in FastAPI ----------------------------------------------


def build_starlette() -> Starlette:
    async def ok(request: Request) -> JSONResponse:
        tag = request.path_params["tag"]
        scope = request.state.airlock
        airlock.enqueue(sync_effect, tag)
        await asyncio.sleep(0)  # let concurrent requests interleave
        airlock.enqueue(async_effect, tag)
        return JSONResponse(intents_payload(scope))

    def sync_endpoint(request: Request) -> JSONResponse:
        tag = request.path_params["tag"]
        airlock.enqueue(sync_effect, tag)
        return JSONResponse(
            {"intents": [str(i) for i in request.state.airlock.intents], "thread": threading.get_ident()}
        )

    async def redirect(request: Request) -> Response:
        airlock.enqueue(sync_effect, request.path_params["tag"])
        return RedirectResponse("/elsewhere", status_code=302)

    async def not_found(request: Request) -> Response:
        airlock.enqueue(sync_effect, request.path_params["tag"])
        raise HTTPException(status_code=404)

    async def server_error(request: Request) -> Response:
        airlock.enqueue(sync_effect, request.path_params["tag"])
        return PlainTextResponse("broken", status_code=500)

    async def gone(request: Request) -> Response:
        airlock.enqueue(sync_effect, request.path_params["tag"])
        return PlainTextResponse("gone", status_code=404)  # returned, not raised

    async def boom(request: Request) -> Response:
        airlock.enqueue(sync_effect, request.path_params["tag"])
        raise RuntimeError("boom")

    async def stream(request: Request) -> Response:
        return StreamingResponse(stream_chunks(request.path_params["tag"]))

    async def hang(request: Request) -> Response:
        return StreamingResponse(hang_after_first_chunk(request.path_params["tag"]))

    async def mixed(request: Request) -> Response:
        tag = request.path_params["tag"]
        airlock.enqueue(sync_effect, f"{tag}-1")
        airlock.enqueue(async_effect, f"{tag}-2")
        airlock.enqueue(sync_effect, f"{tag}-3")
        return JSONResponse(intents_payload(request.state.airlock))

    async def failing(request: Request) -> Response:
        tag = request.path_params["tag"]
        airlock.enqueue(failing_effect, tag)
        airlock.enqueue(sync_effect, tag)
        return PlainTextResponse("ok")

    async def state(request: Request) -> Response:
        scope = request.scope["airlock"]
        return JSONResponse(
            {
                "same": scope is request.state.airlock,
                "active": airlock.get_current_scope() is scope and scope.is_active,
                "origin": scope.origin,
                "cls": type(scope).__name__,
            }
        )

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(
            {"airlock_in_scope": "airlock" in websocket.scope, "current": repr(airlock.get_current_scope())}
        )
        await websocket.close()

    return Starlette(
        routes=[
            Route("/ok/{tag}", ok),
            Route("/sync/{tag}", sync_endpoint),
            Route("/redirect/{tag}", redirect),
            Route("/notfound/{tag}", not_found),
            Route("/error/{tag}", server_error),
            Route("/gone/{tag}", gone),
            Route("/raise/{tag}", boom),
            Route("/stream/{tag}", stream),
            Route("/hang/{tag}", hang),
            Route("/mixed/{tag}", mixed),
            Route("/failing/{tag}", failing),
            Route("/state", state),
            WebSocketRoute("/ws", ws),
        ]
    )


def build_fastapi() -> FastAPI:
    app = FastAPI()

    @app.get("/ok/{tag}")
    async def ok(tag: str, request: FastAPIRequest) -> dict[str, Any]:
        airlock.enqueue(sync_effect, tag)
        await asyncio.sleep(0)
        airlock.enqueue(async_effect, tag)
        return intents_payload(request.state.airlock)

    @app.get("/sync/{tag}")
    def sync_endpoint(tag: str, request: FastAPIRequest) -> dict[str, Any]:
        airlock.enqueue(sync_effect, tag)
        return {"intents": [str(i) for i in request.state.airlock.intents], "thread": threading.get_ident()}

    @app.get("/redirect/{tag}")
    async def redirect(tag: str) -> Response:
        airlock.enqueue(sync_effect, tag)
        return RedirectResponse("/elsewhere", status_code=302)

    @app.get("/notfound/{tag}")
    async def not_found(tag: str) -> None:
        airlock.enqueue(sync_effect, tag)
        raise FastAPIHTTPException(status_code=404)

    @app.get("/error/{tag}")
    async def server_error(tag: str) -> Response:
        airlock.enqueue(sync_effect, tag)
        return PlainTextResponse("broken", status_code=500)

    @app.get("/gone/{tag}")
    async def gone(tag: str) -> Response:
        airlock.enqueue(sync_effect, tag)
        return PlainTextResponse("gone", status_code=404)  # returned, not raised

    @app.get("/raise/{tag}")
    async def boom(tag: str) -> None:
        airlock.enqueue(sync_effect, tag)
        raise RuntimeError("boom")

    @app.get("/stream/{tag}")
    async def stream(tag: str) -> Response:
        return StreamingResponse(stream_chunks(tag))

    @app.get("/hang/{tag}")
    async def hang(tag: str) -> Response:
        return StreamingResponse(hang_after_first_chunk(tag))

    @app.get("/mixed/{tag}")
    async def mixed(tag: str, request: FastAPIRequest) -> dict[str, Any]:
        airlock.enqueue(sync_effect, f"{tag}-1")
        airlock.enqueue(async_effect, f"{tag}-2")
        airlock.enqueue(sync_effect, f"{tag}-3")
        return intents_payload(request.state.airlock)

    @app.get("/failing/{tag}")
    async def failing(tag: str) -> Response:
        airlock.enqueue(failing_effect, tag)
        airlock.enqueue(sync_effect, tag)
        return PlainTextResponse("ok")

    @app.get("/state")
    async def state(request: FastAPIRequest) -> dict[str, Any]:
        scope = request.scope["airlock"]
        return {
            "same": scope is request.state.airlock,
            "active": airlock.get_current_scope() is scope and scope.is_active,
            "origin": scope.origin,
            "cls": type(scope).__name__,
        }

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(
            {"airlock_in_scope": "airlock" in websocket.scope, "current": repr(airlock.get_current_scope())}
        )
        await websocket.close()

    return app


BUILDERS: dict[str, Callable[[], Starlette | FastAPI]] = {
    "starlette": build_starlette,
    "fastapi": build_fastapi,
}


def record_sent(app: Any) -> Any:
    """An outermost ASGI layer that records every message the app sends."""

    async def recorder(scope: Any, receive: Any, send: Any) -> None:
        async def recording_send(message: Any) -> None:
            SENT_MESSAGES.append(dict(message))
            await send(message)

        await app(scope, receive, recording_send)

    return recorder


@pytest.fixture(params=sorted(BUILDERS))
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(framework: str) -> Any:
    built = BUILDERS[framework]()
    built.add_middleware(AirlockMiddleware, _cls=RecordingScope)
    return built


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def get(app: Any, *paths: str, raise_app_exceptions: bool = True) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return list(await asyncio.gather(*(client.get(p) for p in paths)))


# -- through httpx's ASGI transport ------------------------------------------------------------


def test_ok_response_flushes_sync_and_async_tasks(app: Any) -> None:
    (response,) = run(get(app, "/ok/a"))
    assert response.status_code == 200
    assert response.json()["intents"] == ["sync_effect('a')", "async_effect('a')"]
    assert [(tag, kind) for tag, kind, _ in EFFECTS] == [("a", "sync"), ("a", "async")]
    assert request_outcomes() == [("GET /ok/a", "flushed")]


def test_sync_tasks_run_off_the_event_loop_and_async_tasks_on_it(app: Any) -> None:
    (response,) = run(get(app, "/ok/t"))
    loop_thread = response.json()["loop_thread"]
    threads = {kind: thread for _, kind, thread in EFFECTS}
    assert threads["async"] == loop_thread
    assert threads["sync"] != loop_thread


def test_mixed_sync_and_async_tasks_dispatch_in_fifo_order(app: Any) -> None:
    run(get(app, "/mixed/m"))
    assert tags() == ["m-1", "m-2", "m-3"]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/redirect/r", 302), ("/notfound/n", 404), ("/error/e", 500)],
)
def test_status_decides(app: Any, path: str, status: int) -> None:
    (response,) = run(get(app, path))
    assert response.status_code == status
    if status < 400:
        assert tags() == [path.rsplit("/", 1)[1]]
        assert request_outcomes() == [(f"GET {path}", "flushed")]
    else:
        assert EFFECTS == []
        assert request_outcomes() == [(f"GET {path}", "discarded")]


def test_unrouted_404_discards(app: Any) -> None:
    (response,) = run(get(app, "/no/such/route"))
    assert response.status_code == 404
    assert request_outcomes() == [("GET /no/such/route", "discarded")]


def test_raised_exception_discards_and_propagates(app: Any) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        run(get(app, "/raise/x"))
    assert EFFECTS == []
    assert request_outcomes() == [("GET /raise/x", "discarded")]


def test_raised_exception_becomes_500_and_discards(app: Any) -> None:
    (response,) = run(get(app, "/raise/x", raise_app_exceptions=False))
    assert response.status_code == 500
    assert EFFECTS == []


def test_streaming_response_flushes_after_the_final_chunk_was_sent(app: Any) -> None:
    (response,) = run(get(record_sent(app), "/stream/s"))
    assert response.text == "chunk0;chunk1;chunk2;"
    assert tags() == ["s-0", "s-1", "s-2", "s"]
    # snapshot_sent ran at flush and saw the final, more_body=False chunk already sent
    assert EFFECTS[-1][1] == "final-sent=True"


def test_sync_endpoint_in_the_threadpool_enqueues_into_the_request_scope(app: Any) -> None:
    sync_response, probe = run(get(app, "/sync/t", "/ok/probe"))
    body = sync_response.json()
    assert body["intents"] == ["sync_effect('t')"]
    assert body["thread"] != probe.json()["loop_thread"]  # the endpoint really ran in a worker thread
    assert tags().count("t") == 1


def test_starlette_background_task_enqueues_into_its_own_scope() -> None:
    from starlette.background import BackgroundTask

    def after_response(tag: str) -> None:
        airlock.enqueue(snapshot_sent, tag)

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("done", background=BackgroundTask(after_response, "bg"))

    app = Starlette(routes=[Route("/bg", endpoint)])
    app.add_middleware(AirlockMiddleware, _cls=RecordingScope)
    (response,) = run(get(record_sent(app), "/bg"))
    assert response.text == "done"
    assert [(tag, kind) for tag, kind, _ in EFFECTS] == [("bg", "final-sent=True")]
    assert request_outcomes() == [("GET /bg", "flushed")]
    assert ("GET /bg (background)", "flushed") in OUTCOMES


def test_handlers_see_the_scope_in_asgi_scope_and_state(app: Any) -> None:
    (response,) = run(get(app, "/state"))
    assert response.json() == {"same": True, "active": True, "origin": "GET /state", "cls": "RecordingScope"}


def test_dispatch_failure_attempts_every_intent_then_raises(app: Any) -> None:
    with pytest.raises(airlock.DispatchError) as info:
        run(get(app, "/failing/f"))
    assert [i.name for i, _ in info.value.failures] == ["failing_effect"]
    assert tags() == ["f"]  # the intent after the failing one still ran


def test_should_flush_replaces_the_status_rule(framework: str) -> None:
    app = BUILDERS[framework]()
    seen: list[int] = []

    def flush_unless_5xx(asgi_scope: Any, status: int) -> bool:
        seen.append(status)
        return status < 500

    app.add_middleware(AirlockMiddleware, should_flush=flush_unless_5xx)
    run(get(app, "/gone/n", "/error/e", "/notfound/r"))
    assert sorted(seen) == [404, 500]  # not asked for the raised HTTPException: a raising view discards
    assert tags() == ["n"]


def test_should_flush_that_raises_discards(framework: str) -> None:
    app = BUILDERS[framework]()

    def broken(asgi_scope: Any, status: int) -> bool:
        raise ValueError("broken rule")

    app.add_middleware(AirlockMiddleware, should_flush=broken, _cls=RecordingScope)
    with pytest.raises(ValueError, match="broken rule"):
        run(get(app, "/ok/x"))
    assert EFFECTS == []
    assert request_outcomes() == [("GET /ok/x", "discarded")]


def test_scope_kwargs_reach_the_request_scope(framework: str) -> None:
    app = BUILDERS[framework]()
    app.add_middleware(AirlockMiddleware, policy=airlock.BlockTasks({"async_effect"}))
    (response,) = run(get(app, "/ok/p"))
    assert response.status_code == 200
    assert tags() == ["p"] and EFFECTS[0][1] == "sync"


def test_configured_scope_class_is_used_and_explicit_cls_wins() -> None:
    class Configured(airlock.Scope):
        pass

    airlock.configure(scope_cls=Configured)
    app = build_starlette()
    app.add_middleware(AirlockMiddleware)
    (response,) = run(get(app, "/state"))
    assert response.json()["cls"] == "Configured"

    app = build_starlette()
    app.add_middleware(AirlockMiddleware, _cls=RecordingScope)
    (response,) = run(get(app, "/state"))
    assert response.json()["cls"] == "RecordingScope"


def test_default_scope_class_is_asgi_scope() -> None:
    app = build_starlette()
    app.add_middleware(AirlockMiddleware)
    (response,) = run(get(app, "/state"))
    assert response.json()["cls"] == "ASGIScope"


def test_bad_arguments_fail_where_the_middleware_is_built() -> None:
    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        pass

    with pytest.raises(TypeError, match="bogus"):
        AirlockMiddleware(asgi_app, bogus=1)
    with pytest.raises(TypeError, match="should_flush"):
        AirlockMiddleware(asgi_app, should_flush=400)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ASGI application"):
        AirlockMiddleware("app")  # type: ignore[arg-type]


def test_websocket_passes_through_without_a_scope(app: Any) -> None:
    async def drive() -> list[Any]:
        sent: list[Any] = []
        incoming = [{"type": "websocket.connect"}]

        async def receive() -> dict[str, Any]:
            if incoming:
                return incoming.pop()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {**http_scope("/ws", "2.3"), "type": "websocket", "scheme": "ws", "subprotocols": []}
        await app(scope, receive, send)
        return sent

    sent = run(drive())
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert json.loads(sent[1]["text"]) == {"airlock_in_scope": False, "current": "None"}
    assert request_outcomes() == []


def test_lifespan_passes_through_without_a_scope() -> None:
    seen: list[object] = []

    async def lifespan_app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        message = await receive()
        seen.append((message["type"], airlock.get_current_scope(), "airlock" in scope))
        with pytest.raises(airlock.NoScopeError):
            airlock.enqueue(sync_effect, "lifespan")
        await send({"type": "lifespan.startup.complete"})

    async def drive() -> list[Any]:
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "lifespan.startup"}

        async def send(message: Any) -> None:
            sent.append(message)

        await AirlockMiddleware(lifespan_app)({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        return sent

    assert run(drive()) == [{"type": "lifespan.startup.complete"}]
    assert seen == [("lifespan.startup", None, False)]


def http_scope(path: str, spec_version: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def test_client_disconnect_mid_stream_discards(app: Any) -> None:
    """A server that reports the hang-up through receive() (ASGI spec 2.3, like uvicorn)."""

    async def drive() -> list[Any]:
        first_chunk_sent = asyncio.Event()
        sent: list[Any] = []
        calls = 0

        async def receive() -> dict[str, Any]:
            nonlocal calls
            calls += 1
            if calls == 1:
                return {"type": "http.request", "body": b"", "more_body": False}
            await first_chunk_sent.wait()
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and message.get("body"):
                first_chunk_sent.set()

        await app(http_scope("/hang/d", "2.3"), receive, send)
        return sent

    sent = run(drive())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert EFFECTS == []
    assert request_outcomes() == [("GET /hang/d", "discarded")]


def test_client_disconnect_reported_by_send_discards_and_propagates(app: Any) -> None:
    """A server that raises from send() once the client is gone (ASGI spec 2.4)."""

    async def drive() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            if message["type"] == "http.response.body":
                raise OSError("connection reset by peer")

        await app(http_scope("/stream/d", "2.4"), receive, send)

    with pytest.raises((ClientDisconnect, OSError)):
        run(drive())
    assert EFFECTS == []
    assert request_outcomes() == [("GET /stream/d", "discarded")]


def test_app_that_returns_without_completing_the_response_discards() -> None:
    async def half_app(scope: Any, receive: Any, send: Any) -> None:
        airlock.enqueue(sync_effect, "half")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})

    async def drive() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            pass

        await AirlockMiddleware(half_app, _cls=RecordingScope)(http_scope("/half", "2.3"), receive, send)

    run(drive())
    assert EFFECTS == []
    assert request_outcomes() == [("GET /half", "discarded")]


def test_async_executor_is_awaited_on_the_loop() -> None:
    calls: list[tuple[str, int]] = []

    async def async_executor(intent: airlock.Intent) -> None:
        calls.append((intent.name, threading.get_ident()))

    async def main() -> int:
        async with airlock.scope(_cls=ASGIScope, executor=async_executor):
            airlock.enqueue(sync_effect, "x")
        return threading.get_ident()

    loop_thread = run(main())
    assert calls == [("sync_effect", loop_thread)]
    assert EFFECTS == []  # the executor decided not to call the task


def test_observers_see_the_request_dispatch(app: Any) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.dispatches: list[tuple[str | None, list[str], int]] = []

        def on_scope_end(self, event: airlock.ScopeEndEvent) -> None:
            pass

        def on_dispatch(self, event: airlock.DispatchEvent) -> None:
            self.dispatches.append((event.origin, [i.name for i in event.intents], len(event.failures)))

    recorder = Recorder()
    airlock.add_observer(recorder)
    try:
        run(get(app, "/ok/o"))
        with pytest.raises(airlock.DispatchError):
            run(get(app, "/failing/f"))
    finally:
        airlock.remove_observer(recorder)
    assert recorder.dispatches == [
        ("GET /ok/o", ["sync_effect", "async_effect"], 0),
        ("GET /failing/f", ["failing_effect", "sync_effect"], 1),
    ]


def test_worker_thread_sees_the_flushing_context() -> None:
    from contextvars import ContextVar

    marker: ContextVar[str] = ContextVar("marker", default="unset")
    seen: list[str] = []

    def read_marker() -> None:
        seen.append(marker.get())

    async def main() -> None:
        marker.set("carried")
        async with airlock.scope(_cls=ASGIScope):
            airlock.enqueue(read_marker)

    run(main())
    assert seen == ["carried"]


def test_many_concurrent_requests_each_run_only_their_own_effects_once(framework: str) -> None:
    app = BUILDERS[framework]()
    app.add_middleware(AirlockMiddleware, _cls=RecordingScope)
    n = 300
    paths = []
    for i in range(n):
        kind = ("ok", "sync", "notfound")[i % 3]
        paths.append(f"/{kind}/r{i}")
    responses = run(get(app, *paths))

    expected: Counter[tuple[str, str]] = Counter()
    for i, (path, response) in enumerate(zip(paths, responses, strict=True)):
        tag = f"r{i}"
        kind = path.split("/")[1]
        if kind == "ok":
            assert response.json()["intents"] == [f"sync_effect('{tag}')", f"async_effect('{tag}')"]
            expected.update([(tag, "sync"), (tag, "async")])
        elif kind == "sync":
            assert response.json()["intents"] == [f"sync_effect('{tag}')"]
            expected.update([(tag, "sync")])
        else:
            assert response.status_code == 404
    assert Counter((tag, kind) for tag, kind, _ in EFFECTS) == expected
    assert len(request_outcomes()) == n


# -- the example apps --------------------------------------------------------------------------


def test_starlette_example() -> None:
    example = load_example("starlette_app")

    async def drive() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=example.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            created = await client.post("/orders", json={"item": "tea", "quantity": 2})
            refused = await client.post("/orders", json={"item": "tea", "quantity": 99})
            return created, refused, await client.get("/sent")

    created, refused, sent = run(drive())
    assert created.status_code == 201
    assert created.json()["pending"] == ["send_receipt(1)", "notify_warehouse(1)"]
    assert refused.status_code == 409
    assert sent.json() == ["receipt for order 1", "warehouse notified of order 1"]


def test_fastapi_example() -> None:
    example = load_example("fastapi_app")

    async def drive() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=example.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return [
                await client.post("/signups", params={"email": "ada@example.com"}),
                await client.post("/signups", params={"email": "bad"}),
                await client.post("/imports", params={"count": 2}),
                await client.get("/sent"),
            ]

    ok, bad, imported, sent = run(drive())
    assert ok.status_code == 201 and bad.status_code == 422 and imported.status_code == 201
    assert sent.json() == [
        "welcome ada@example.com",
        "indexed ada@example.com",
        "welcome user0@example.com",
        "welcome user1@example.com",
    ]


# -- end to end under uvicorn ------------------------------------------------------------------


@contextmanager
def serve(app: Any) -> Iterator[int]:
    """Run ``app`` under a real uvicorn server on a free 127.0.0.1 port; stop it afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="critical", loop="asyncio", http="h11")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


def wait_for_outcomes(count: int) -> None:
    """The server answers before it flushes: wait until ``count`` request scopes have ended."""
    deadline = time.monotonic() + 30
    while len(request_outcomes()) < count:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"only {len(request_outcomes())} of {count} request scopes ended: {OUTCOMES}"
            )
        time.sleep(0.01)


@pytest.fixture
def server_port(app: Any) -> Iterator[int]:
    with serve(app) as port:
        yield port


def test_under_uvicorn_statuses_exceptions_streaming_and_endpoints(server_port: int) -> None:
    base = f"http://127.0.0.1:{server_port}"
    with httpx.Client(base_url=base) as client:
        assert client.get("/ok/a").status_code == 200
        assert client.get("/sync/b").status_code == 200
        assert client.get("/redirect/c").status_code == 302
        assert client.get("/notfound/d").status_code == 404
        assert client.get("/error/e").status_code == 500
        assert client.get("/raise/f").status_code == 500
        assert client.get("/stream/g").text == "chunk0;chunk1;chunk2;"
    wait_for_outcomes(7)
    assert dict(request_outcomes()) == {
        "GET /ok/a": "flushed",
        "GET /sync/b": "flushed",
        "GET /redirect/c": "flushed",
        "GET /notfound/d": "discarded",
        "GET /error/e": "discarded",
        "GET /raise/f": "discarded",
        "GET /stream/g": "flushed",
    }
    assert Counter(tags()) == Counter(["a", "a", "b", "c", "g-0", "g-1", "g-2", "g"])


def test_under_uvicorn_client_closing_mid_stream_discards(server_port: int) -> None:
    with socket.create_connection(("127.0.0.1", server_port), timeout=10) as conn:
        conn.sendall(b"GET /hang/gone HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        while b"first;" not in received:
            chunk = conn.recv(4096)
            assert chunk, "server closed before the first chunk"
            received += chunk
    # the client has hung up mid-stream; the server notices and the app stops
    wait_for_outcomes(1)
    assert request_outcomes() == [("GET /hang/gone", "discarded")]
    assert EFFECTS == []


def test_under_uvicorn_concurrent_requests_each_run_only_their_own_effects_once(server_port: int) -> None:
    n = 240

    async def drive() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{server_port}", limits=limits, timeout=60
        ) as client:
            return list(
                await asyncio.gather(*(client.get(f"/{'ok' if i % 2 else 'sync'}/u{i}") for i in range(n)))
            )

    responses = run(drive())
    wait_for_outcomes(n)
    expected: Counter[tuple[str, str]] = Counter()
    for i, response in enumerate(responses):
        tag = f"u{i}"
        assert response.status_code == 200
        if i % 2:
            assert response.json()["intents"] == [f"sync_effect('{tag}')", f"async_effect('{tag}')"]
            expected.update([(tag, "sync"), (tag, "async")])
        else:
            assert response.json()["intents"] == [f"sync_effect('{tag}')"]
            expected.update([(tag, "sync")])
    assert Counter((tag, kind) for tag, kind, _ in EFFECTS) == expected
