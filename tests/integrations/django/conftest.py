from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from airlock.integrations.django import configure_from_settings
from integrations.django.testapp import effects
from services import require_service


@pytest.fixture(scope="session", autouse=True)
def _django_database_reachable() -> None:
    # On the PostgreSQL run, every test here skips (or fails under
    # AIRLOCK_REQUIRE_SERVICES=1) when the server is down.
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        require_service("postgres")


@pytest.fixture(autouse=True)
def airlock_configured_by_app() -> None:
    """Configure airlock as the app does at startup (tests/conftest.py reset it)."""
    configure_from_settings()


@pytest.fixture
def ran() -> Iterator[list[tuple[str, bool]]]:
    """What the test effects recorded: (label, default DB still in a transaction)."""
    effects.RAN.clear()
    effects.THREADS.clear()
    yield effects.RAN
    effects.RAN.clear()
