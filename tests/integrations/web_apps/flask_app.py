"""A Flask app for gunicorn: statuses, an errorhandler that answers 200, streaming, concurrency."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response

import airlock
from airlock.integrations.flask import Airlock

from .record import RecordingScope, effect

app = Flask(__name__)
Airlock(app, _cls=RecordingScope)


class OutOfStock(Exception):
    pass


@app.errorhandler(OutOfStock)
def out_of_stock(error: OutOfStock) -> tuple[dict[str, str], int]:
    return {"out_of_stock": str(error)}, 200


@app.get("/health")
def health() -> str:
    return "ok"


@app.get("/ok/<tag>")
def ok(tag: str) -> str:
    airlock.enqueue(effect, tag)
    time.sleep(0.001)  # let concurrent requests interleave
    airlock.enqueue(effect, f"{tag}-2")
    return tag


@app.get("/gone/<tag>")
def gone(tag: str) -> Any:
    airlock.enqueue(effect, tag)
    return "gone", 404


@app.get("/handled/<tag>")
def handled(tag: str) -> Any:
    airlock.enqueue(effect, tag)
    raise OutOfStock(tag)


@app.get("/raise/<tag>")
def boom(tag: str) -> Any:
    airlock.enqueue(effect, tag)
    raise RuntimeError(tag)


@app.get("/stream/<tag>")
def stream(tag: str) -> Response:
    airlock.enqueue(effect, tag)

    def chunks() -> Iterator[str]:
        yield "a;"
        yield "b;"

    return Response(chunks())
