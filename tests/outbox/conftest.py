from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table

from airlock.outbox import SQLAlchemyStorage


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@contextmanager
def fresh_storage(url: str) -> Iterator[SQLAlchemyStorage]:
    """A fresh outbox table (``airlock_outbox_<random>``) in the database at ``url``, dropped after."""
    storage = SQLAlchemyStorage.from_url(url, f"airlock_outbox_{uuid.uuid4().hex[:10]}")
    storage.create_table()
    try:
        yield storage
    finally:
        storage.close()
        storage.drop_table()
        storage.engine.dispose()


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
