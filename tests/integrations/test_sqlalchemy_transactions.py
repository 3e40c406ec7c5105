"""SQLAlchemy scopes: each intent follows the transaction it was made in (SPEC §5.1, §5.5).

The shapes users write: a script that commits and then reads an attribute, a
bulk import that catches ``IntegrityError`` around ``begin_nested()``, the
"session joined to an external connection transaction" test fixture in every
``join_transaction_mode``. Each task looks, from another connection, whether
its row is committed: what the worker would see.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

import airlock
from airlock.integrations.sqlalchemy import AsyncSQLAlchemyScope, SQLAlchemyScope

from . import test_sqlalchemy as base
from .test_sqlalchemy import (
    EFFECTS,
    Base,
    Order,
    async_committed_items,
    committed_items,
    fix_pysqlite_transactions,
    record,
    record_visible,
)

# The fixtures of the base module, shared (pytest finds them by these names).
_clean_effects = base._clean_effects
backend = base.backend
engine = base.engine
session = base.session

# "conservative_savepoint" in SQLAlchemy 2.0, renamed "conditional_savepoint" in 2.1: the default.
DEFAULT_JOIN_MODE = inspect.signature(Session.__init__).parameters["join_transaction_mode"].default
JOIN_MODES = [DEFAULT_JOIN_MODE, "create_savepoint", "control_fully", "rollback_only"]


# -- the transaction an intent was made in, not the one open at flush -----------------------------


def test_script_that_commits_then_reads_an_attribute(engine: Engine) -> None:
    with Session(engine) as session:  # expire_on_commit: reading order.id after commit() refreshes it
        with airlock.scope(_cls=SQLAlchemyScope, session=session):
            order = Order(item="tea")
            session.add(order)
            airlock.enqueue(record_visible, engine, "tea")
            session.commit()
            assert order.id is not None  # the refresh opened a read transaction, still open at flush
            assert session.in_transaction()
        assert EFFECTS == [("tea", True)]  # its transaction had committed: dispatched at the scope's end
    # leaving the with block closed the read transaction without commit
    assert EFFECTS == [("tea", True)]


def test_refresh_after_commit_then_rollback_keeps_the_committed_intent(
    engine: Engine, session: Session
) -> None:
    with airlock.scope(_cls=SQLAlchemyScope, session=session):
        order = Order(item="tea")
        session.add(order)
        session.flush()
        airlock.enqueue(record_visible, engine, "tea")
        session.commit()
        session.refresh(order)  # a read transaction
        session.rollback()
    assert EFFECTS == [("tea", True)]


def test_scope_ending_inside_a_later_transaction_does_not_wait_for_it(
    engine: Engine, session: Session
) -> None:
    with airlock.scope(_cls=SQLAlchemyScope, session=session):
        with session.begin():
            session.add(Order(item="tea"))
            airlock.enqueue(record_visible, engine, "tea")
        session.begin()  # another transaction, open when the scope ends
        session.add(Order(item="gone"))
        session.flush()
    assert EFFECTS == [("tea", True)]
    session.rollback()
    assert EFFECTS == [("tea", True)]  # dispatched once, and not dropped by the later rollback
    assert committed_items(engine) == ["tea"]


def test_intent_before_the_first_statement_of_a_transaction_that_rolls_back(session: Session) -> None:
    with airlock.scope(_cls=SQLAlchemyScope, session=session):
        airlock.enqueue(record, "gone")  # no transaction yet: tied to the next one
        session.add(Order(item="gone"))
        session.flush()  # begins it
        session.rollback()
    assert EFFECTS == []
    with session.begin():  # a later commit does not resurrect it
        session.add(Order(item="coffee"))
    assert EFFECTS == []


def test_intent_in_an_explicit_transaction_before_any_statement_that_rolls_back(session: Session) -> None:
    with airlock.scope(_cls=SQLAlchemyScope, session=session):
        session.begin()
        airlock.enqueue(record, "gone")  # the transaction has no connection yet
        session.rollback()
    session.commit()
    assert EFFECTS == []


def test_intents_from_two_transactions_in_one_scope_follow_their_own(
    engine: Engine, session: Session
) -> None:
    with airlock.scope(_cls=SQLAlchemyScope, session=session):
        with session.begin():
            session.add(Order(item="kept"))
            airlock.enqueue(record_visible, engine, "kept")
        with pytest.raises(RuntimeError), session.begin():
            session.add(Order(item="gone"))
            airlock.enqueue(record_visible, engine, "gone")
            raise RuntimeError("abort the second transaction")
    assert EFFECTS == [("kept", True)]


def test_intent_made_in_a_read_transaction_needs_its_commit(session: Session) -> None:
    """The documented rule, for reads too: closed without commit means it never happened."""
    with airlock.scope(_cls=SQLAlchemyScope, session=session):
        session.scalar(select(Order.id).limit(1))  # autobegins
        airlock.enqueue(record, "read")
    session.close()
    assert EFFECTS == []


def test_bulk_import_catching_integrity_errors(engine: Engine, session: Session) -> None:
    rows = ["a", "b", "a", "c", "b"]
    imported = []
    with airlock.scope(_cls=SQLAlchemyScope, session=session):
        for n, item in enumerate(rows):
            try:
                with session.begin_nested():
                    session.add(Order(id=ord(item), item=item))
                    airlock.enqueue(record_visible, engine, item)
                    session.flush()  # a duplicate key fails here, inside the savepoint
                imported.append(item)
            except IntegrityError:
                pass  # the savepoint rolled back; the import goes on
            assert EFFECTS == [], n
        session.commit()
    assert imported == ["a", "b", "c"]
    assert EFFECTS == [("a", True), ("b", True), ("c", True)]


def test_async_bulk_import_and_refresh_after_commit(backend: dict[str, str]) -> None:
    async def main() -> None:
        engine = create_async_engine(backend["async"])
        if engine.dialect.name == "sqlite":
            fix_pysqlite_transactions(engine.sync_engine)
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        try:
            async with AsyncSession(engine) as session:
                async with airlock.scope(_cls=AsyncSQLAlchemyScope, session=session):
                    for item in ["a", "b", "a"]:
                        try:
                            async with session.begin_nested():
                                session.add(Order(id=ord(item), item=item))
                                airlock.enqueue(record_visible_async, engine, item)
                                await session.flush()
                        except IntegrityError:
                            pass
                    last = Order(item="z")
                    session.add(last)
                    airlock.enqueue(record_visible_async, engine, "z")
                    await session.commit()
                    await session.refresh(last)  # a read transaction, open when the scope ends
                assert EFFECTS == [("a", True), ("b", True), ("z", True)]
                await session.rollback()
            assert EFFECTS == [("a", True), ("b", True), ("z", True)]
        finally:
            async with engine.begin() as connection:
                await connection.run_sync(Base.metadata.drop_all)
            await engine.dispose()

    asyncio.run(main())


async def record_visible_async(engine: AsyncEngine, item: str) -> None:
    EFFECTS.append((item, item in await async_committed_items(engine)))


def test_one_tracker_per_session_for_sync_and_async_scopes() -> None:
    async_session = AsyncSession()
    sync_scope = SQLAlchemyScope(session=async_session.sync_session)
    async_scope = AsyncSQLAlchemyScope(session=async_session)
    assert sync_scope._tracker is async_scope._tracker


# -- a session joined to an external connection transaction -----------------------------------------


def joined_session(connection: Any, mode: str) -> Session:
    return Session(bind=connection, join_transaction_mode=mode)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", JOIN_MODES)
def test_joined_session_outer_rollback_drops_everything(engine: Engine, mode: str) -> None:
    connection = engine.connect()
    outer = connection.begin()
    session = joined_session(connection, mode)
    try:
        with airlock.scope(_cls=SQLAlchemyScope, session=session):
            session.add(Order(item="tea"))
            airlock.enqueue(record_visible, engine, "tea")
            session.commit()
            with session.begin_nested():
                airlock.enqueue(record, "nested")
            session.commit()
        if mode == "control_fully":
            # the session controls the outer transaction: its commit is the outermost one
            assert not outer.is_active
            assert EFFECTS == [("tea", True), "nested"]
            return
        assert EFFECTS == []  # the session's commit committed nothing in the database
        session.close()
        outer.rollback()
        assert EFFECTS == []
        assert committed_items(engine) == []
    finally:
        session.close()
        connection.close()


@pytest.mark.parametrize("mode", JOIN_MODES)
def test_joined_session_dispatches_after_the_outer_commit(engine: Engine, mode: str) -> None:
    with engine.connect() as connection:
        outer = connection.begin()
        session = joined_session(connection, mode)
        with airlock.scope(_cls=SQLAlchemyScope, session=session):
            session.add(Order(item="tea"))
            airlock.enqueue(record_visible, engine, "tea")
            session.commit()
        session.close()
        if outer.is_active:
            assert EFFECTS == []
            outer.commit()
    # after the outermost COMMIT, by the time the connection is back in the pool at the latest
    assert EFFECTS == [("tea", True)]
    assert committed_items(engine) == ["tea"]


@pytest.mark.parametrize("mode", JOIN_MODES)
def test_joined_session_session_rollback_drops(engine: Engine, mode: str) -> None:
    with engine.connect() as connection:
        outer = connection.begin()
        session = joined_session(connection, mode)
        with airlock.scope(_cls=SQLAlchemyScope, session=session):
            session.add(Order(item="gone"))
            airlock.enqueue(record, "gone")
            session.flush()
            session.rollback()
        session.close()
        if outer.is_active:
            outer.commit()
    assert EFFECTS == []


def test_joined_session_inside_an_outer_savepoint_that_rolls_back(engine: Engine) -> None:
    with engine.connect() as connection:
        outer = connection.begin()
        savepoint = connection.begin_nested()
        session = joined_session(connection, DEFAULT_JOIN_MODE)  # joins with a savepoint of its own
        with airlock.scope(_cls=SQLAlchemyScope, session=session):
            session.add(Order(item="gone"))
            airlock.enqueue(record, "gone")
            session.commit()
        session.close()
        savepoint.rollback()
        outer.commit()
    assert EFFECTS == []


@asynccontextmanager
async def async_tables(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(url)
    if engine.dialect.name == "sqlite":
        fix_pysqlite_transactions(engine.sync_engine)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    try:
        yield engine
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
        await engine.dispose()


@pytest.mark.parametrize("mode", JOIN_MODES)
def test_async_joined_session_follows_the_outer_transaction(backend: dict[str, str], mode: str) -> None:
    async def main() -> None:
        async with async_tables(backend["async"]) as engine:
            for outcome in ("rollback", "commit"):
                EFFECTS.clear()
                async with engine.connect() as connection:
                    outer = await connection.begin()
                    session = AsyncSession(bind=connection, join_transaction_mode=mode)  # type: ignore[arg-type]
                    async with airlock.scope(_cls=AsyncSQLAlchemyScope, session=session):
                        session.add(Order(item=outcome))
                        airlock.enqueue(record_visible_async, engine, outcome)
                        await session.commit()
                    await session.close()
                    if mode == "control_fully":
                        assert EFFECTS == [(outcome, True)]
                        await connection.execute(select(1))
                        await connection.rollback()
                        continue
                    assert EFFECTS == []
                    if outcome == "rollback":
                        await outer.rollback()
                    else:
                        await outer.commit()
                expected = [] if outcome == "rollback" and mode != "control_fully" else [(outcome, True)]
                assert EFFECTS == expected, outcome

    asyncio.run(main())


def test_sync_engine_fixture_with_engine_begin(engine: Engine) -> None:
    """``with engine.begin() as connection:`` around the session: COMMIT then close."""
    with engine.begin() as connection:
        session = joined_session(connection, "create_savepoint")
        with airlock.scope(_cls=SQLAlchemyScope, session=session):
            session.add(Order(item="tea"))
            airlock.enqueue(record_visible, engine, "tea")
            session.commit()
        session.close()
        assert EFFECTS == []
    assert EFFECTS == [("tea", True)]


def failing(tag: str) -> None:
    raise ConnectionError(f"broker down for {tag}")


def test_joined_session_dispatch_failure_after_the_outer_commit_is_raised(engine: Engine) -> None:
    with pytest.raises(airlock.DispatchError) as info:
        with engine.connect() as connection:
            outer = connection.begin()
            session = joined_session(connection, "create_savepoint")
            with airlock.scope(_cls=SQLAlchemyScope, session=session):
                session.add(Order(item="tea"))
                airlock.enqueue(failing, "first")
                airlock.enqueue(record_visible, engine, "tea")
                session.commit()
            session.close()
            outer.commit()
    assert [i.name for i, _ in info.value.failures] == ["failing"]
    assert EFFECTS == [("tea", True)]  # every intent was attempted, after the commit
    assert committed_items(engine) == ["tea"]


def test_joined_session_outer_commit_then_more_work_on_the_connection(engine: Engine) -> None:
    with engine.connect() as connection:
        outer = connection.begin()
        session = joined_session(connection, "rollback_only")
        with airlock.scope(_cls=SQLAlchemyScope, session=session):
            session.add(Order(item="tea"))
            airlock.enqueue(record_visible, engine, "tea")
            session.commit()
        session.close()
        outer.commit()
        connection.execute(select(1))  # the next transaction on the connection: the COMMIT went through
        assert EFFECTS == [("tea", True)]
        connection.rollback()
    assert EFFECTS == [("tea", True)]


def test_a_session_dropped_with_waiting_intents_is_collected_and_says_so(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    import gc
    import weakref

    session = Session(engine)
    with airlock.scope(_cls=SQLAlchemyScope, session=session):
        session.add(Order(item="never"))
        airlock.enqueue(record, "never")  # waits for the next transaction, which never begins
    gone = weakref.ref(session)
    del session
    with caplog.at_level("WARNING", logger="airlock"):
        gc.collect()
    assert gone() is None  # nothing airlock keeps holds the session alive
    assert "1 intent(s) were waiting for a transaction of a session that is gone" in caplog.text
    assert EFFECTS == []


def test_intent_made_in_two_sessions_transactions_waits_for_both(engine: Engine) -> None:
    with Session(engine) as orders, Session(engine) as audit:
        orders.begin()
        audit.begin()
        with airlock.scope(_cls=SQLAlchemyScope, session=audit):
            with airlock.scope(_cls=SQLAlchemyScope, session=orders):
                orders.add(Order(item="tea"))
                airlock.enqueue(record_visible, engine, "tea")
        orders.commit()
        assert EFFECTS == []  # its audit transaction is still open
        audit.commit()
        assert EFFECTS == [("tea", True)]

        orders.begin()
        audit.begin()
        with airlock.scope(_cls=SQLAlchemyScope, session=audit):
            with airlock.scope(_cls=SQLAlchemyScope, session=orders):
                airlock.enqueue(record, "gone")
        audit.commit()
        orders.rollback()  # one of its transactions rolled back: never sent
        assert EFFECTS == [("tea", True)]
