"""A Starlette app for uvicorn and Granian: FileResponse, background tasks, exception handlers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import airlock
from airlock.integrations.asgi import AirlockMiddleware

from .record import RecordingASGIScope, effect

DOCUMENT = Path(os.environ.get("AIRLOCK_WEB_DOCUMENT", __file__))


class OutOfStock(Exception):
    pass


def background_effect(tag: str) -> None:
    airlock.enqueue(effect, tag)


def failing_background(tag: str) -> None:
    airlock.enqueue(effect, tag)
    raise RuntimeError(f"background task {tag} failed")


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def ok(request: Request) -> Response:
    tag = request.path_params["tag"]
    airlock.enqueue(effect, tag)
    await asyncio.sleep(0)  # let concurrent requests interleave
    airlock.enqueue(effect, f"{tag}-2")
    return PlainTextResponse(tag, background=BackgroundTask(background_effect, f"{tag}-bg"))


async def file(request: Request) -> Response:
    tag = request.path_params["tag"]
    airlock.enqueue(effect, tag)
    offered = "http.response.pathsend" in request.scope.get("extensions", {})
    return FileResponse(
        DOCUMENT,
        headers={"x-pathsend-offered": "1" if offered else "0"},
        background=BackgroundTask(background_effect, f"{tag}-bg"),
    )


async def background_fails(request: Request) -> Response:
    tag = request.path_params["tag"]
    airlock.enqueue(effect, tag)
    return PlainTextResponse(tag, background=BackgroundTask(failing_background, f"{tag}-bg"))


async def handled(request: Request) -> Response:
    tag = request.path_params["tag"]
    airlock.enqueue(effect, tag)
    raise OutOfStock(tag)


async def gone(request: Request) -> Response:
    airlock.enqueue(effect, request.path_params["tag"])
    return PlainTextResponse("gone", status_code=404)


async def out_of_stock(request: Request, exc: Exception) -> Response:
    return JSONResponse({"out_of_stock": str(exc)}, status_code=200)


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/ok/{tag}", ok),
        Route("/file/{tag}", file),
        Route("/bg-fails/{tag}", background_fails),
        Route("/handled/{tag}", handled),
        Route("/gone/{tag}", gone),
    ],
    exception_handlers={OutOfStock: out_of_stock},
)
app.add_middleware(AirlockMiddleware, _cls=RecordingASGIScope)
