from __future__ import annotations

from collections.abc import Iterator

import pytest

import airlock
from services import require_service


@pytest.fixture(autouse=True)
def _fresh_airlock_configuration() -> Iterator[None]:
    """Every test starts and ends with the built-in defaults."""
    airlock.reset_configuration()
    yield
    airlock.reset_configuration()


@pytest.fixture
def postgres_url() -> str:
    return require_service("postgres")


@pytest.fixture
def mysql_url() -> str:
    return require_service("mysql")


@pytest.fixture
def redis_url() -> str:
    return require_service("redis")


@pytest.fixture
def amqp_url() -> str:
    return require_service("amqp")
