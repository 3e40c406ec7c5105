"""AirlockMiddleware: when a response completes, what happens after it, and views that raised.

Driven in-process (raw ASGI messages, httpx's ASGI transport); the same
behaviours under real server processes are in ``test_asgi_servers.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi import BackgroundTasks, FastAPI
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.background import BackgroundTasks as StarletteBackgroundTasks
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

import airlock
from airlock.integrations.asgi import AirlockMiddleware

from . import test_asgi as base
from .test_asgi import (
    EFFECTS,
    OUTCOMES,
    RecordingScope,
    get,
    http_scope,
    request_outcomes,
    run,
    sync_effect,
    tags,
)

_clean_records = base._clean_records  # the base module's autouse fixture, shared


def background_outcomes() -> list[tuple[str, str]]:
    return [outcome for outcome in OUTCOMES if outcome[0].endswith("(background)")]


async def drive(
    app: Any, path: str, extensions: dict[str, Any] | None = None, spec_version: str = "2.4"
) -> list[dict[str, Any]]:
    """Call ``app`` like a server that offers ``extensions``; return what it sent."""
    sent: list[dict[str, Any]] = []

    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {**http_scope(path, spec_version), "extensions": extensions or {}}
    await app(scope, receive, send)
    return sent


# -- what completes a response ------------------------------------------------------------------


def test_file_response_with_pathsend_completes_the_response(tmp_path: Path) -> None:
    document = tmp_path / "receipt.txt"
    document.write_text("receipt")

    async def download(request: Request) -> Response:
        airlock.enqueue(sync_effect, "download")
        return FileResponse(document, background=BackgroundTask(airlock.enqueue, sync_effect, "after"))

    app = Starlette(routes=[Route("/file", download)])
    app.add_middleware(AirlockMiddleware, _cls=RecordingScope)
    sent = run(drive(app, "/file", {"http.response.pathsend": {}}))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    assert tags() == ["download", "after"]
    assert request_outcomes() == [("GET /file", "flushed")]
    assert background_outcomes() == [("GET /file (background)", "flushed")]


def test_zerocopysend_completes_the_response_with_its_last_message() -> None:
    async def zerocopy_app(scope: Any, receive: Any, send: Any) -> None:
        airlock.enqueue(sync_effect, "before")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.zerocopysend", "file": 3, "count": 10, "more_body": True})
        airlock.enqueue(sync_effect, "while-streaming")
        await send({"type": "http.response.zerocopysend", "file": 3, "count": 10, "more_body": False})
        assert [str(i) for i in airlock.get_current_scope().intents] == []  # type: ignore[union-attr]
        airlock.enqueue(sync_effect, "after")

    run(
        drive(AirlockMiddleware(zerocopy_app, _cls=RecordingScope), "/zc", {"http.response.zerocopysend": {}})
    )
    assert tags() == ["before", "while-streaming", "after"]
    assert request_outcomes() == [("GET /zc", "flushed")]


def test_final_trailers_complete_a_response_that_announced_them() -> None:
    async def trailers_app(scope: Any, receive: Any, send: Any) -> None:
        airlock.enqueue(sync_effect, "view")
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"done", "more_body": False})
        assert airlock.get_current_scope().origin == "GET /t"  # type: ignore[union-attr]
        # the body is over, but the trailers are still to come: still the request's scope
        await send({"type": "http.response.trailers", "headers": [], "more_trailers": False})
        assert airlock.get_current_scope().origin == "GET /t (background)"  # type: ignore[union-attr]

    run(drive(AirlockMiddleware(trailers_app, _cls=RecordingScope), "/t"))
    assert request_outcomes() == [("GET /t", "flushed")]


def test_effects_of_the_view_run_before_its_background_work() -> None:
    async def app_with_work_after(scope: Any, receive: Any, send: Any) -> None:
        airlock.enqueue(sync_effect, "view")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        airlock.enqueue(sync_effect, "after")
        assert EFFECTS == []  # both are dispatched once the app has returned

    run(drive(AirlockMiddleware(app_with_work_after, _cls=RecordingScope), "/v"))
    assert tags() == ["view", "after"]  # FIFO across the two scopes
    assert request_outcomes() == [("GET /v", "flushed")]
    assert background_outcomes() == [("GET /v (background)", "flushed")]


def test_enqueue_from_a_task_started_before_the_response_completed_lands_in_the_request_scope() -> None:
    """Starlette's BaseHTTPMiddleware inside AirlockMiddleware runs the app (and its background
    work) in a task of its own: that work joins the request's scope, never an ended one."""
    from starlette.middleware.base import BaseHTTPMiddleware

    async def endpoint(request: Request) -> Response:
        airlock.enqueue(sync_effect, "view")
        return PlainTextResponse("ok", background=BackgroundTask(background_enqueue, "bg"))

    async def passthrough(request: Request, call_next: Any) -> Response:
        return await call_next(request)  # type: ignore[no-any-return]

    app = Starlette(routes=[Route("/m", endpoint)])
    app.add_middleware(BaseHTTPMiddleware, dispatch=passthrough)  # inner
    app.add_middleware(AirlockMiddleware, _cls=RecordingScope)  # outer
    (response,) = run(get(app, "/m"))
    assert response.status_code == 200
    assert sorted(tags()) == ["bg", "view"]
    assert request_outcomes() == [("GET /m", "flushed")]


def test_status_of_a_pathsend_response_decides() -> None:
    async def denied(scope: Any, receive: Any, send: Any) -> None:
        airlock.enqueue(sync_effect, "denied")
        await send({"type": "http.response.start", "status": 403, "headers": []})
        await send({"type": "http.response.pathsend", "path": "/dev/null"})

    run(drive(AirlockMiddleware(denied, _cls=RecordingScope), "/d", {"http.response.pathsend": {}}))
    assert EFFECTS == []
    assert request_outcomes() == [("GET /d", "discarded")]


# -- background tasks get their own scope ---------------------------------------------------------


async def stream_three(tag: str) -> Any:
    for n in range(3):
        airlock.enqueue(sync_effect, f"{tag}-{n}")
        yield b"chunk;"


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
@pytest.mark.parametrize("kind", ["file", "stream"])
def test_streamed_responses_and_a_failing_background_task(
    tmp_path: Path, kind: str, spec_version: str
) -> None:
    """Under ASGI < 2.4 Starlette streams from a task of its own, then runs the background work here."""
    document = tmp_path / "receipt.txt"
    document.write_text("receipt")

    async def endpoint(request: Request) -> Response:
        airlock.enqueue(sync_effect, "view")
        background = BackgroundTask(failing_background, "bg-failed")
        if kind == "file":
            return FileResponse(document, background=background)
        return StreamingResponse(stream_three("s"), background=background)

    app = Starlette(routes=[Route("/r", endpoint)])
    app.add_middleware(AirlockMiddleware, _cls=RecordingScope)
    with pytest.raises(RuntimeError, match="background task failed"):
        run(drive(app, "/r", spec_version=spec_version))
    assert tags() == (["view"] if kind == "file" else ["view", "s-0", "s-1", "s-2"])
    assert request_outcomes() == [("GET /r", "flushed")]
    assert background_outcomes() == [("GET /r (background)", "discarded")]


def test_app_that_completes_from_another_task_and_then_fails_keeps_the_views_effects() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        airlock.enqueue(sync_effect, "view")

        async def respond() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        await asyncio.create_task(respond())
        raise RuntimeError("failed after the response")

    with pytest.raises(RuntimeError, match="after the response"):
        run(drive(AirlockMiddleware(app, _cls=RecordingScope), "/x"))
    assert tags() == ["view"]
    assert request_outcomes() == [("GET /x", "flushed")]


def failing_background(tag: str) -> None:
    airlock.enqueue(sync_effect, tag)
    raise RuntimeError("background task failed")


def background_enqueue(tag: str) -> None:
    airlock.enqueue(sync_effect, tag)


def build_starlette_background() -> Starlette:
    async def ok_then_fail(request: Request) -> Response:
        airlock.enqueue(sync_effect, "view")
        return PlainTextResponse("ok", background=BackgroundTask(failing_background, "bg-failed"))

    async def ok_then_ok(request: Request) -> Response:
        airlock.enqueue(sync_effect, "view")
        tasks = StarletteBackgroundTasks()
        tasks.add_task(background_enqueue, "bg-1")
        tasks.add_task(background_enqueue, "bg-2")
        return PlainTextResponse("ok", background=tasks)

    async def error_then_ok(request: Request) -> Response:
        airlock.enqueue(sync_effect, "view")
        return PlainTextResponse("no", status_code=400, background=BackgroundTask(background_enqueue, "bg"))

    return Starlette(
        routes=[Route("/fail", ok_then_fail), Route("/ok", ok_then_ok), Route("/error", error_then_ok)]
    )


def build_fastapi_background() -> FastAPI:
    app = FastAPI()

    @app.get("/fail")
    async def ok_then_fail(background_tasks: BackgroundTasks) -> dict[str, str]:
        airlock.enqueue(sync_effect, "view")
        background_tasks.add_task(failing_background, "bg-failed")
        return {"ok": "yes"}

    @app.get("/ok")
    def ok_then_ok(background_tasks: BackgroundTasks) -> dict[str, str]:  # a sync view, in the thread pool
        airlock.enqueue(sync_effect, "view")
        background_tasks.add_task(background_enqueue, "bg-1")
        background_tasks.add_task(background_enqueue, "bg-2")
        return {"ok": "yes"}

    @app.get("/error")
    async def error_then_ok(background_tasks: BackgroundTasks) -> Response:
        airlock.enqueue(sync_effect, "view")
        background_tasks.add_task(background_enqueue, "bg")
        return JSONResponse({"error": "bad"}, status_code=400, background=background_tasks)

    return app


BACKGROUND_APPS = {"starlette": build_starlette_background, "fastapi": build_fastapi_background}


@pytest.fixture(params=sorted(BACKGROUND_APPS))
def background_app(request: pytest.FixtureRequest) -> Any:
    app = BACKGROUND_APPS[request.param]()
    app.add_middleware(AirlockMiddleware, _cls=RecordingScope)
    return app


def test_failing_background_task_keeps_the_views_effects_and_drops_its_own(background_app: Any) -> None:
    with pytest.raises(RuntimeError, match="background task failed"):
        run(get(background_app, "/fail"))
    assert tags() == ["view"]
    assert request_outcomes() == [("GET /fail", "flushed")]
    assert background_outcomes() == [("GET /fail (background)", "discarded")]


def test_failing_background_task_under_a_server_that_swallows_it(background_app: Any) -> None:
    (response,) = run(get(background_app, "/fail", raise_app_exceptions=False))
    assert response.status_code == 200
    assert tags() == ["view"]


def test_background_tasks_effects_flush_after_the_views(background_app: Any) -> None:
    (response,) = run(get(background_app, "/ok"))
    assert response.status_code == 200
    assert tags() == ["view", "bg-1", "bg-2"]
    assert background_outcomes() == [("GET /ok (background)", "flushed")]


def test_background_work_after_an_error_response_is_decided_by_its_own_outcome(background_app: Any) -> None:
    (response,) = run(get(background_app, "/error"))
    assert response.status_code == 400
    assert tags() == ["bg"]  # the view's effects were discarded (400); the background work succeeded
    assert request_outcomes() == [("GET /error", "discarded")]


# -- a view that raised discards, whatever response a handler made of it ----------------------------


def build_starlette_handled() -> Starlette:
    async def raising(request: Request) -> Response:
        airlock.enqueue(sync_effect, "raised")
        raise LookupError("no such thing")

    def raising_sync(request: Request) -> Response:
        airlock.enqueue(sync_effect, "raised-sync")
        raise LookupError("no such thing")

    async def fine(request: Request) -> Response:
        airlock.enqueue(sync_effect, "fine")
        return PlainTextResponse("fine")

    async def handle_lookup(request: Request, exc: Exception) -> Response:
        return JSONResponse({"handled": str(exc)}, status_code=200)

    return Starlette(
        routes=[Route("/raise", raising), Route("/raise-sync", raising_sync), Route("/fine", fine)],
        exception_handlers={LookupError: handle_lookup},
    )


def build_fastapi_handled() -> FastAPI:
    app = FastAPI()

    @app.exception_handler(LookupError)
    async def handle_lookup(request: Any, exc: LookupError) -> JSONResponse:
        return JSONResponse({"handled": str(exc)}, status_code=200)

    @app.get("/raise")
    async def raising() -> None:
        airlock.enqueue(sync_effect, "raised")
        raise LookupError("no such thing")

    @app.get("/raise-sync")
    def raising_sync() -> None:
        airlock.enqueue(sync_effect, "raised-sync")
        raise LookupError("no such thing")

    @app.get("/fine")
    async def fine() -> str:
        airlock.enqueue(sync_effect, "fine")
        return "fine"

    return app


@pytest.mark.parametrize(
    "build", [build_starlette_handled, build_fastapi_handled], ids=["starlette", "fastapi"]
)
def test_view_that_raised_discards_even_when_a_handler_answers_200(build: Any) -> None:
    app = build()
    app.add_middleware(AirlockMiddleware, _cls=RecordingScope)
    raised, raised_sync, fine = run(get(app, "/raise", "/raise-sync", "/fine"))
    assert (raised.status_code, raised_sync.status_code, fine.status_code) == (200, 200, 200)
    assert raised.json() == {"handled": "no such thing"}
    assert tags() == ["fine"]
    assert sorted(request_outcomes()) == [
        ("GET /fine", "flushed"),
        ("GET /raise", "discarded"),
        ("GET /raise-sync", "discarded"),
    ]


def test_should_flush_is_not_asked_for_a_view_that_raised() -> None:
    asked: list[int] = []

    def always(asgi_scope: Any, status: int) -> bool:
        asked.append(status)
        return True

    app = build_starlette_handled()
    app.add_middleware(AirlockMiddleware, should_flush=always)
    run(get(app, "/raise", "/fine"))
    assert asked == [200]
    assert tags() == ["fine"]


def test_many_concurrent_requests_with_background_work_never_cross() -> None:
    async def endpoint(request: Request) -> Response:
        tag = request.path_params["tag"]
        airlock.enqueue(sync_effect, f"{tag}-view")
        await asyncio.sleep(0)
        fail = int(tag[1:]) % 4 == 0
        task = BackgroundTask(failing_background if fail else background_enqueue, f"{tag}-bg")
        return PlainTextResponse(tag, background=task)

    app = Starlette(routes=[Route("/r/{tag}", endpoint)])
    app.add_middleware(AirlockMiddleware, _cls=RecordingScope)
    n = 200
    responses = run(get(app, *(f"/r/t{i}" for i in range(n)), raise_app_exceptions=False))
    assert all(r.status_code == 200 for r in responses)
    expected = []
    for i in range(n):
        expected.append(f"t{i}-view")
        if i % 4:
            expected.append(f"t{i}-bg")
    assert sorted(tags()) == sorted(expected)
    assert len(request_outcomes()) == n and len(background_outcomes()) == n


# -- request scopes are built with keyword arguments only ---------------------------------------------


class KeywordsOnlyScope(RecordingScope):
    def __init__(self, **kwargs: Any) -> None:
        self.received = dict(kwargs)
        super().__init__(**kwargs)


class NoOriginScope(RecordingScope):
    def __init__(self, *, policy: Any = None) -> None:  # an explicit signature without origin/executor
        super().__init__(policy=policy)


@pytest.mark.parametrize("cls", [KeywordsOnlyScope, NoOriginScope])
def test_request_scopes_are_built_with_keywords_the_class_accepts(cls: type[RecordingScope]) -> None:
    async def endpoint(request: Request) -> Response:
        scope = request.state.airlock
        assert type(scope) is cls and scope.origin == "GET /k"
        airlock.enqueue(sync_effect, "k")
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/k", endpoint)])
    app.add_middleware(AirlockMiddleware, _cls=cls, policy=airlock.LogOnFlush())
    (response,) = run(get(app, "/k"))
    assert response.status_code == 200
    assert tags() == ["k"]
