"""AirlockMiddleware through Django's test client, on a real database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction
from django.apps import apps
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, modify_settings

import airlock
from airlock.integrations.django import AirlockMiddleware, DjangoScope
from integrations.django.testapp.effects import labels, record
from integrations.django.testapp.models import Order

pytestmark = pytest.mark.django_db(transaction=True)

AIRLOCK_MW = "airlock.integrations.django.AirlockMiddleware"
TX_MW = "integrations.django.testapp.middleware.TransactionMiddleware"


@pytest.fixture
def atomic_requests() -> Iterator[None]:
    """ATOMIC_REQUESTS on for the default database during the test."""
    db = connections.settings["default"]
    db["ATOMIC_REQUESTS"] = True
    try:
        yield
    finally:
        db["ATOMIC_REQUESTS"] = False


@pytest.fixture(params=[False, True], ids=["ATOMIC_REQUESTS-off", "ATOMIC_REQUESTS-on"])
def atomic_requests_either_way(request: pytest.FixtureRequest) -> Iterator[None]:
    db = connections.settings["default"]
    db["ATOMIC_REQUESTS"] = request.param
    try:
        yield
    finally:
        db["ATOMIC_REQUESTS"] = False


@pytest.mark.parametrize("status", [200, 201, 204, 301, 302, 304])
def test_success_and_redirect_flush_after_the_response(
    client: Client, ran: list[tuple[str, bool]], status: int
) -> None:
    response = client.get(f"/effect/{status}/")
    assert response.status_code == status
    assert ran == [(f"status-{status}", False)]
    scope = response.wsgi_request.airlock_scope
    assert scope.is_flushed and scope.origin == f"GET /effect/{status}/"


@pytest.mark.parametrize("status", [400, 403, 404, 409, 500, 503])
def test_client_and_server_errors_discard(client: Client, ran: list[tuple[str, bool]], status: int) -> None:
    response = client.get(f"/effect/{status}/")
    assert response.status_code == status
    assert ran == []
    assert response.wsgi_request.airlock_scope.is_discarded


def test_exception_discards_and_still_propagates(client: Client, ran: list[tuple[str, bool]]) -> None:
    with pytest.raises(RuntimeError, match="view exploded"):
        client.get("/explode/")
    assert ran == []


def test_exception_without_reraise_is_a_500_and_discards(ran: list[tuple[str, bool]]) -> None:
    response = Client(raise_request_exception=False).get("/explode/")
    assert response.status_code == 500
    assert ran == []
    assert response.wsgi_request.airlock_scope.is_discarded


def test_post_origin_and_savepoint_rollback_inside_the_view(
    client: Client, ran: list[tuple[str, bool]]
) -> None:
    response = client.post("/savepoint/")
    assert response.status_code == 200
    assert labels() == ["before", "in-kept-savepoint"]
    assert response.wsgi_request.airlock_scope.origin == "POST /savepoint/"
    assert list(Order.objects.values_list("label", flat=True)) == ["kept"]


def test_atomic_requests_dispatch_after_the_view_commits(
    atomic_requests: None, client: Client, ran: list[tuple[str, bool]]
) -> None:
    assert client.get("/effect/200/").status_code == 200
    assert ran == [("status-200", False)]
    assert Order.objects.filter(label="status-200").exists()


def test_atomic_requests_exception_rolls_back_and_dispatches_nothing(
    atomic_requests: None, client: Client, ran: list[tuple[str, bool]]
) -> None:
    with pytest.raises(RuntimeError):
        client.get("/explode/")
    assert ran == []
    assert not Order.objects.exists()


def test_atomic_requests_error_status_commits_but_dispatches_nothing(
    atomic_requests: None, client: Client, ran: list[tuple[str, bool]]
) -> None:
    assert client.get("/effect/500/").status_code == 500
    assert ran == []
    assert Order.objects.filter(label="status-500").exists()  # Django committed it


def test_atomic_requests_rolled_back_savepoint_in_view(
    atomic_requests: None, client: Client, ran: list[tuple[str, bool]]
) -> None:
    assert client.get("/savepoint/").status_code == 200
    assert labels() == ["before", "in-kept-savepoint"]


@pytest.mark.parametrize(
    "middleware",
    [[TX_MW, AIRLOCK_MW], [AIRLOCK_MW, TX_MW]],
    ids=["transaction-outside-airlock", "transaction-inside-airlock"],
)
def test_placement_in_middleware_with_a_transaction_that_commits(
    settings: Any, ran: list[tuple[str, bool]], middleware: list[str], atomic_requests_either_way: None
) -> None:
    settings.MIDDLEWARE = middleware
    assert Client().get("/effect/200/").status_code == 200
    assert ran == [("status-200", False)]  # ran after the commit, wherever the commit was


@pytest.mark.parametrize(
    "middleware",
    [[TX_MW, AIRLOCK_MW], [AIRLOCK_MW, TX_MW]],
    ids=["transaction-outside-airlock", "transaction-inside-airlock"],
)
def test_placement_in_middleware_with_a_transaction_that_rolls_back(
    settings: Any, ran: list[tuple[str, bool]], middleware: list[str], atomic_requests_either_way: None
) -> None:
    settings.MIDDLEWARE = middleware
    # A 200 the surrounding transaction rolls back anyway: airlock flushed (or
    # will flush) a response it considers good, yet nothing may run.
    response = Client().get("/effect/200/", headers={"X-Rollback": "1"})
    assert response.status_code == 200
    assert ran == []
    assert not Order.objects.exists()


def test_the_request_scope_is_the_configured_class(settings: Any, ran: list[tuple[str, bool]]) -> None:
    settings.AIRLOCK = {"SCOPE": "airlock.Scope"}  # opting out of DjangoScope is respected
    response = Client().get("/effect/200/")
    assert type(response.wsgi_request.airlock_scope) is airlock.Scope
    assert labels() == ["status-200"]


def test_without_the_app_requests_still_get_a_django_scope(ran: list[tuple[str, bool]]) -> None:
    airlock.reset_configuration()  # what a project without the app has: the core's defaults
    with modify_settings(INSTALLED_APPS={"remove": ["airlock.integrations.django"]}):
        assert not apps.is_installed("airlock.integrations.django")
        response = Client().get("/effect/200/")
    assert type(response.wsgi_request.airlock_scope) is DjangoScope
    assert labels() == ["status-200"]


def test_an_exception_raised_through_the_middleware_discards_and_propagates(
    ran: list[tuple[str, bool]],
) -> None:
    # Django turns view errors into 500 responses before they reach a
    # middleware; what still arrives as an exception (from a handler further in,
    # or BaseException) must discard the scope and propagate untouched.
    request = RequestFactory().get("/anything/")

    def get_response(request: HttpRequest) -> HttpResponse:
        airlock.enqueue(record, "never")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        AirlockMiddleware(get_response)(request)
    assert request.airlock_scope.is_discarded and ran == []


def test_a_cancelled_async_request_dispatches_nothing_made_outside_a_transaction_and_propagates(
    ran: list[tuple[str, bool]],
) -> None:
    # Under ASGI a client disconnect cancels the request's task; only intents
    # made inside a transaction may still follow their data (none here).
    request = RequestFactory().get("/anything/")

    async def get_response(request: HttpRequest) -> HttpResponse:
        airlock.enqueue(record, "never")
        raise asyncio.CancelledError

    middleware = AirlockMiddleware(get_response)
    assert iscoroutinefunction(middleware)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(middleware(request))
    assert not request.airlock_scope.is_active and ran == []


class NeverFlushScope(DjangoScope):
    """A scope whose own rule says discard: the middleware must ask it (one end-of-life path)."""

    def should_flush(self, error: BaseException | None) -> bool:
        return False


class BrokenRuleScope(DjangoScope):
    def should_flush(self, error: BaseException | None) -> bool:
        raise LookupError("the rule itself failed")


def test_the_middleware_asks_the_scopes_should_flush(settings: Any, ran: list[tuple[str, bool]]) -> None:
    settings.AIRLOCK = {"SCOPE": f"{__name__}.NeverFlushScope"}
    response = Client().get("/effect/200/")
    assert response.status_code == 200 and ran == []
    assert response.wsgi_request.airlock_scope.is_discarded


def test_a_should_flush_that_raises_discards_and_propagates(
    settings: Any, ran: list[tuple[str, bool]]
) -> None:
    settings.AIRLOCK = {"SCOPE": f"{__name__}.BrokenRuleScope"}
    request = RequestFactory().get("/anything/")

    def get_response(request: HttpRequest) -> HttpResponse:
        airlock.enqueue(record, "never")
        return HttpResponse("ok")

    with pytest.raises(LookupError, match="the rule itself failed"):
        AirlockMiddleware(get_response)(request)
    assert request.airlock_scope.is_discarded and ran == []


def test_process_exception_turned_into_a_200_still_discards(ran: list[tuple[str, bool]]) -> None:
    # In-process twin of the server test: the view raised, a middleware outside
    # airlock's answered 200 through process_exception.
    middleware = [
        "integrations.django.testapp.middleware.HandledErrorMiddleware",
        "airlock.integrations.django.AirlockMiddleware",
    ]
    with modify_settings(MIDDLEWARE={"prepend": middleware[0]}):
        response = Client().get("/explode/")
    assert response.status_code == 200 and response.content == b"handled"
    assert response.wsgi_request.airlock_scope.is_discarded and ran == []
