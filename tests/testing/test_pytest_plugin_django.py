"""The pytest plugin with pytest-django and the Django integration, in this very session.

The ``airlock_scope`` fixture is the configured ``DjangoScope``, entered inside
the test's database transaction, and the request scopes of Django's test
client (``AirlockMiddleware``) nest inside it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connections
from django.test import Client

import airlock
from airlock.integrations.django import DjangoScope, configure_from_settings
from airlock.testing import assert_enqueued
from integrations.django.testapp import effects


@pytest.fixture(autouse=True)
def _configured_like_the_app() -> Iterator[None]:
    # The app configures airlock at start-up; tests/conftest.py resets the
    # configuration before every test, so do what the app does again.
    configure_from_settings()
    effects.RAN.clear()
    yield
    effects.RAN.clear()


@pytest.fixture
def dispatched_at_scope_end() -> Iterator[list[str]]:
    """Request it before ``airlock_scope`` (so it is torn down after it) and put the
    labels the scope's end must have dispatched in the list."""
    expected: list[str] = []
    yield expected
    assert effects.labels() == expected


@pytest.mark.django_db
def test_fixture_is_the_configured_django_scope(airlock_scope: airlock.Scope) -> None:
    assert type(airlock_scope) is DjangoScope
    assert connections["default"].in_atomic_block  # the test transaction is open
    airlock.enqueue(effects.record, "x")
    assert effects.RAN == []


@pytest.mark.airlock(policy="allow-all")
def test_allowed_effects_never_escape_the_rolled_back_test_transaction(
    dispatched_at_scope_end: list[str], airlock_scope: airlock.Scope, db: None
) -> None:
    # The intent is tied to the test transaction, which pytest-django rolls
    # back: when the scope flushes after the test, nothing dispatches.
    airlock.enqueue(effects.record, "allowed")
    assert airlock_scope.intents[0].name == "record"


@pytest.mark.airlock(policy="allow-all")
def test_without_a_test_transaction_the_flush_dispatches(
    dispatched_at_scope_end: list[str], airlock_scope: airlock.Scope, transactional_db: None
) -> None:
    airlock.enqueue(effects.record, "committed")
    assert effects.RAN == []
    dispatched_at_scope_end.append("committed")


@pytest.mark.django_db
def test_request_scopes_nest_in_the_test_scope(airlock_scope: airlock.Scope, client: Client) -> None:
    response = client.get("/effect/200/")
    assert response.status_code == 200
    assert effects.RAN == []  # the request scope flushed into the test scope
    (intent,) = airlock_scope.captured_intents
    assert intent.args == ("status-200",)
    assert intent.origin is not None and "/effect/200/" in intent.origin
    assert_enqueued(airlock_scope, effects.record, "status-200")


@pytest.mark.django_db
def test_savepoint_rollbacks_are_visible_through_the_test_scope(
    airlock_scope: airlock.Scope, client: Client
) -> None:
    client.get("/savepoint/")
    assert [i.args[0] for i in airlock_scope.intents] == ["before", "in-kept-savepoint"]


@pytest.mark.django_db
@pytest.mark.airlock(policy=airlock.AssertNoEffects())
def test_marker_policy_judges_enqueues_inside_views(client: Client) -> None:
    with pytest.raises(airlock.PolicyViolation, match="record was enqueued"):
        client.get("/effect/200/")
