from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from outbox_helpers import fresh_storage
from sqlalchemy import Column, Integer, MetaData, String, Table

from airlock.outbox import SQLAlchemyStorage


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def storage(db_url: str) -> Iterator[SQLAlchemyStorage]:
    """A fresh outbox table in each database under test."""
    with fresh_storage(db_url) as storage:
        yield storage


@pytest.fixture
def pg_storage(postgres_url: str) -> Iterator[SQLAlchemyStorage]:
    with fresh_storage(postgres_url) as storage:
        yield storage


@pytest.fixture
def orders(storage: SQLAlchemyStorage) -> Iterator[Table]:
    """A business table next to the outbox, to show both commit or roll back together."""
    table = Table(
        f"{storage.table.name}_orders",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("label", String(50)),
    )
    table.create(storage.engine)
    try:
        yield table
    finally:
        table.drop(storage.engine)


@pytest.fixture(params=["postgres", "mysql"])
def django_db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The test database with the outbox app migrated into it (``manage.py migrate``), cleaned up after."""
    from django_outbox_procs import drop_outbox_tables, run

    url: str = request.getfixturevalue(f"{request.param}_url")
    drop_outbox_tables(url)
    run(url, "-m", "django", "migrate", "airlock_outbox", "-v", "0")
    try:
        yield url
    finally:
        drop_outbox_tables(url)
