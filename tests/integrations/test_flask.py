"""The Flask extension against real Flask apps, through Flask's test client."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask, Response, abort, g, redirect, stream_with_context

import airlock
from airlock.integrations.flask import Airlock

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

EFFECTS: list[str] = []


@pytest.fixture(autouse=True)
def _clean_effects() -> Iterator[None]:
    EFFECTS.clear()
    yield


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"airlock_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # SQLAlchemy and dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def effect(tag: str) -> None:
    EFFECTS.append(tag)


async def async_effect(tag: str) -> None:
    EFFECTS.append(tag)


def failing_effect(tag: str) -> None:
    raise ConnectionError(f"mail server down for {tag}")


def build_app(**airlock_kwargs: Any) -> Flask:
    app = Flask(__name__)
    Airlock(app, **airlock_kwargs)
    add_routes(app)
    return app


def add_routes(app: Flask) -> None:
    @app.get("/ok/<tag>")
    def ok(tag: str) -> dict[str, Any]:
        airlock.enqueue(effect, tag)
        scope = g.airlock_scope
        return {
            "intents": [str(i) for i in scope.intents],
            "current": airlock.get_current_scope() is scope,
            "origin": scope.origin,
        }

    @app.get("/redirect/<tag>")
    def go_elsewhere(tag: str) -> Any:
        airlock.enqueue(effect, tag)
        return redirect("/elsewhere", code=302)

    @app.get("/notfound/<tag>")
    def not_found(tag: str) -> Any:
        airlock.enqueue(effect, tag)
        abort(404)

    @app.get("/error/<tag>")
    def server_error(tag: str) -> Any:
        airlock.enqueue(effect, tag)
        return "broken", 500

    @app.get("/gone/<tag>")
    def gone(tag: str) -> Any:
        airlock.enqueue(effect, tag)
        return "gone", 404  # returned, not raised

    @app.get("/raise/<tag>")
    def boom(tag: str) -> Any:
        airlock.enqueue(effect, tag)
        raise RuntimeError("boom")

    @app.get("/async/<tag>")
    async def async_view(tag: str) -> dict[str, Any]:
        airlock.enqueue(effect, f"{tag}-before")
        await asyncio.sleep(0)
        airlock.enqueue(effect, f"{tag}-after")
        return {
            "intents": [str(i) for i in g.airlock_scope.intents],
            "current": airlock.get_current_scope() is g.airlock_scope,
        }

    @app.get("/async-raise/<tag>")
    async def async_raise(tag: str) -> Any:
        airlock.enqueue(effect, tag)
        await asyncio.sleep(0)
        raise RuntimeError("async boom")

    @app.get("/coroutine-task/<tag>")
    async def coroutine_task(tag: str) -> Any:
        airlock.enqueue(async_effect, tag)
        return "unreachable"

    @app.get("/stream/<tag>")
    def stream(tag: str) -> Response:
        airlock.enqueue(effect, tag)

        def chunks() -> Iterator[str]:
            yield "a;"
            yield "b;"

        return Response(chunks())

    @app.get("/stream-enqueue/<tag>")
    def stream_enqueue(tag: str) -> Response:
        def chunks() -> Iterator[str]:
            yield "a;"
            airlock.enqueue(effect, tag)  # after teardown: there is no scope any more
            yield "b;"

        return Response(stream_with_context(chunks()))

    @app.get("/failing/<tag>")
    def failing(tag: str) -> str:
        airlock.enqueue(failing_effect, tag)
        airlock.enqueue(effect, tag)
        return "ok"


@pytest.fixture
def client() -> Any:
    return build_app().test_client()


def test_ok_flushes(client: Any) -> None:
    response = client.get("/ok/a")
    assert response.status_code == 200
    assert response.json == {"intents": ["effect('a')"], "current": True, "origin": "GET /ok/a"}
    assert EFFECTS == ["a"]


@pytest.mark.parametrize(
    ("path", "status", "flushed"),
    [("/redirect/r", 302, True), ("/notfound/n", 404, False), ("/error/e", 500, False)],
)
def test_status_decides(client: Any, path: str, status: int, flushed: bool) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert EFFECTS == ([path.rsplit("/", 1)[1]] if flushed else [])


def test_raised_exception_discards_and_propagates_when_testing() -> None:
    app = build_app()
    app.testing = True  # PROPAGATE_EXCEPTIONS: the test client re-raises
    with pytest.raises(RuntimeError, match="boom"):
        app.test_client().get("/raise/x")
    assert EFFECTS == []


def test_raised_exception_becomes_500_and_discards(client: Any) -> None:
    assert client.get("/raise/x").status_code == 500
    assert EFFECTS == []


def test_async_view_enqueues_land_in_the_request_scope(client: Any) -> None:
    response = client.get("/async/v")
    assert response.json == {"intents": ["effect('v-before')", "effect('v-after')"], "current": True}
    assert EFFECTS == ["v-before", "v-after"]


def test_async_view_that_raises_discards(client: Any) -> None:
    assert client.get("/async-raise/x").status_code == 500
    assert EFFECTS == []


def test_coroutine_task_in_a_flask_request_is_a_usage_error_at_the_enqueue() -> None:
    app = build_app()
    app.testing = True
    with pytest.raises(airlock.UsageError, match="async_effect is a coroutine function"):
        app.test_client().get("/coroutine-task/c")
    assert EFFECTS == []


def test_streamed_response_flushes_what_the_view_enqueued(client: Any) -> None:
    response = client.get("/stream/s")
    assert response.data == b"a;b;"
    assert EFFECTS == ["s"]


def test_enqueue_from_a_streaming_generator_fails_loudly(client: Any) -> None:
    with pytest.raises(airlock.NoScopeError):
        client.get("/stream-enqueue/s").get_data()
    assert EFFECTS == []


def test_dispatch_failure_attempts_every_intent_then_raises(client: Any) -> None:
    with pytest.raises(airlock.DispatchError) as info:
        client.get("/failing/f")
    assert [i.name for i, _ in info.value.failures] == ["failing_effect"]
    assert EFFECTS == ["f"]


def test_should_flush_replaces_the_status_rule() -> None:
    seen: list[int] = []

    def flush_unless_5xx(response: Response) -> bool:
        seen.append(response.status_code)
        return response.status_code < 500

    client = build_app(should_flush=flush_unless_5xx).test_client()
    client.get("/gone/n")
    client.get("/error/e")
    client.get("/notfound/r")  # abort(404) raises: discarded without asking
    assert seen == [404, 500]
    assert EFFECTS == ["n"]


def test_should_flush_that_raises_discards() -> None:
    def broken(response: Response) -> bool:
        raise ValueError("broken rule")

    app = build_app(should_flush=broken)
    with pytest.raises(ValueError, match="broken rule"):
        app.test_client().get("/ok/x")
    assert EFFECTS == []


def test_scope_kwargs_reach_the_request_scope() -> None:
    client = build_app(policy=airlock.DropAll()).test_client()
    assert client.get("/ok/x").status_code == 200
    assert EFFECTS == []


def test_exception_in_a_later_after_request_hook_discards() -> None:
    app = Flask(__name__)

    @app.after_request
    def break_after(response: Response) -> Response:  # registered first, so it runs after airlock's
        raise RuntimeError("after_request failed")

    Airlock(app)
    add_routes(app)
    assert app.test_client().get("/ok/x").status_code == 500
    assert EFFECTS == []


def test_before_request_that_answers_first_leaves_no_scope_and_no_error() -> None:
    app = Flask(__name__)

    @app.before_request
    def maintenance() -> tuple[str, int]:
        return "down for maintenance", 503

    Airlock(app)
    add_routes(app)
    response = app.test_client().get("/ok/x")
    assert response.status_code == 503
    assert EFFECTS == []
    assert airlock.get_current_scope() is None


def test_scope_stays_on_g_for_later_teardown_hooks() -> None:
    app = Flask(__name__)
    seen: list[tuple[bool, bool]] = []

    @app.teardown_request
    def inspect_scope(error: BaseException | None) -> None:  # registered first, runs after airlock's
        scope = g.airlock_scope
        seen.append((scope.is_flushed, scope.is_discarded))

    Airlock(app)
    add_routes(app)
    client = app.test_client()
    client.get("/ok/a")
    client.get("/notfound/b")
    assert seen == [(True, False), (False, True)]


def test_init_app_factory_style_and_one_extension_per_app() -> None:
    extension = Airlock()
    first, second = Flask("first"), Flask("second")
    for app in (first, second):
        extension.init_app(app)
        add_routes(app)
    first.test_client().get("/ok/1")
    second.test_client().get("/ok/2")
    assert EFFECTS == ["1", "2"]
    assert first.extensions["airlock"] is extension
    with pytest.raises(RuntimeError, match="already initialised"):
        Airlock(first)


def test_bad_arguments_fail_at_construction() -> None:
    with pytest.raises(TypeError, match="bogus"):
        Airlock(bogus=1)
    with pytest.raises(TypeError, match="should_flush"):
        Airlock(should_flush=400)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="flask.Flask"):
        Airlock().init_app("app")  # type: ignore[arg-type]


def test_request_scope_nests_in_an_enclosing_scope() -> None:
    client = build_app().test_client()
    with airlock.scope() as outer:
        client.get("/ok/inner")
        assert EFFECTS == []  # captured by the enclosing scope, which has the last word
        assert [str(i) for i in outer.captured_intents] == ["effect('inner')"]
    assert EFFECTS == ["inner"]


def test_concurrent_requests_in_threads_each_run_only_their_own_effects_once() -> None:
    app = build_app()
    n = 200

    def call(i: int) -> tuple[int, Any]:
        kind = ("ok", "async", "notfound")[i % 3]
        response = app.test_client().get(f"/{kind}/t{i}")
        return response.status_code, response.json

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(n)))

    expected: Counter[str] = Counter()
    for i, (status, body) in enumerate(results):
        kind = ("ok", "async", "notfound")[i % 3]
        if kind == "ok":
            assert body["intents"] == [f"effect('t{i}')"]
            expected.update([f"t{i}"])
        elif kind == "async":
            assert body["intents"] == [f"effect('t{i}-before')", f"effect('t{i}-after')"]
            expected.update([f"t{i}-before", f"t{i}-after"])
        else:
            assert status == 404
    assert Counter(EFFECTS) == expected


class OutOfStock(Exception):
    pass


def build_handled_app() -> Flask:
    app = build_app()

    @app.errorhandler(OutOfStock)
    def out_of_stock(error: OutOfStock) -> tuple[dict[str, str], int]:
        return {"handled": str(error)}, 200

    @app.errorhandler(404)
    def friendly_not_found(error: Exception) -> tuple[str, int]:
        return "nothing here, but fine", 200

    @app.get("/sold-out/<tag>")
    def sold_out(tag: str) -> Any:
        airlock.enqueue(effect, tag)
        raise OutOfStock(tag)

    @app.get("/async-sold-out/<tag>")
    async def async_sold_out(tag: str) -> Any:
        airlock.enqueue(effect, tag)
        await asyncio.sleep(0)
        raise OutOfStock(tag)

    return app


def test_view_that_raised_discards_even_when_an_errorhandler_answers_200() -> None:
    client = build_handled_app().test_client()
    sold_out = client.get("/sold-out/s")
    async_sold_out = client.get("/async-sold-out/a")
    aborted = client.get("/notfound/n")  # abort(404), turned into a 200 by the 404 handler
    fine = client.get("/ok/f")
    assert [r.status_code for r in (sold_out, async_sold_out, aborted, fine)] == [200, 200, 200, 200]
    assert sold_out.json == {"handled": "s"}
    assert EFFECTS == ["f"]


def test_raised_flag_does_not_leak_into_the_next_request() -> None:
    client = build_handled_app().test_client()
    client.get("/sold-out/s")
    client.get("/ok/after")
    assert EFFECTS == ["after"]


def test_flask_example() -> None:
    example = load_example("flask_app")
    client = example.create_app().test_client()
    created = client.post("/orders", json={"item": "tea", "quantity": 2})
    refused = client.post("/orders", json={"item": "tea", "quantity": 99})
    shipped = client.post("/orders/1/ship")
    missing = client.post("/orders/99/ship")
    assert (created.status_code, refused.status_code, shipped.status_code, missing.status_code) == (
        201,
        409,
        200,
        404,
    )
    assert created.json["pending"] == ["send_receipt(1)"]
    assert client.get("/sent").json == ["receipt for order 1", "courier booked for order 1"]


class KeywordsOnlyScope(airlock.Scope):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)


class NoOriginScope(airlock.Scope):
    def __init__(self, *, policy: Any = None) -> None:  # an explicit signature without origin/executor
        super().__init__(policy=policy)


@pytest.mark.parametrize("cls", [KeywordsOnlyScope, NoOriginScope])
def test_request_scopes_are_built_with_keywords_the_class_accepts(cls: type[airlock.Scope]) -> None:
    client = build_app(_cls=cls, policy=airlock.LogOnFlush()).test_client()
    response = client.get("/ok/k")
    assert response.json["origin"] == "GET /ok/k"
    assert EFFECTS == ["k"]
