"""SQLAlchemyScope / AsyncSQLAlchemyScope on real databases.

SQLite (pysqlite, aiosqlite) always; PostgreSQL (psycopg, asyncpg) through the
``postgres_url`` fixture. Tables are named ``airlock_web_*`` with the process id,
so concurrent runs on the same server never meet.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import Engine, String, create_engine, event, func, select
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_scoped_session,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, scoped_session, sessionmaker

import airlock
from airlock.integrations.sqlalchemy import AsyncSQLAlchemyScope, SQLAlchemyScope

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TABLE = f"airlock_web_orders_{os.getpid()}"


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = TABLE
    id: Mapped[int] = mapped_column(primary_key=True)
    item: Mapped[str] = mapped_column(String(50))


EFFECTS: list[Any] = []


@pytest.fixture(autouse=True)
def _clean_effects() -> Iterator[None]:
    EFFECTS.clear()
    yield


def record(tag: str) -> None:
    EFFECTS.append(tag)


async def record_async(tag: str) -> None:
    await asyncio.sleep(0)
    EFFECTS.append(tag)


def failing(tag: str) -> None:
    raise ConnectionError(f"broker down for {tag}")


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"airlock_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # SQLAlchemy and dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


# -- engines ------------------------------------------------------------------------------


def fix_pysqlite_transactions(engine: Engine) -> None:
    """SQLAlchemy's documented recipe: let SQLAlchemy, not the driver, emit BEGIN (so SAVEPOINT works)."""

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite":
        path = tmp_path / "airlock_web.db"
        return {"sync": f"sqlite:///{path}", "async": f"sqlite+aiosqlite:///{path}"}
    url = request.getfixturevalue("postgres_url")
    rest = url.split("://", 1)[1]
    return {"sync": f"postgresql+psycopg://{rest}", "async": f"postgresql+asyncpg://{rest}"}


@pytest.fixture
def engine(backend: dict[str, str]) -> Iterator[Engine]:
    engine = create_engine(backend["sync"])
    if engine.dialect.name == "sqlite":
        fix_pysqlite_transactions(engine)
    Base.metadata.create_all(engine)
    try:
        yield engine
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


def committed_items(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(select(Order.item).order_by(Order.id)))


def record_visible(engine: Engine, item: str) -> None:
    """A task that looks, from another connection, whether its row is committed."""
    EFFECTS.append((item, item in committed_items(engine)))


# -- sync Session --------------------------------------------------------------------------


def test_dispatch_waits_for_commit(engine: Engine, session: Session) -> None:
    with session.begin():
        with airlock.scope(_cls=SQLAlchemyScope, session=session) as scope:
            session.add(Order(item="tea"))
            airlock.enqueue(record_visible, engine, "tea")
        assert scope.is_flushed
        session.flush()
        assert EFFECTS == []  # flushed, but the transaction has not committed yet
    assert EFFECTS == [("tea", True)]  # ran after commit: the row was visible from elsewhere


def test_rollback_drops(engine: Engine, session: Session) -> None:
    with pytest.raises(RuntimeError), session.begin():
        with airlock.scope(_cls=SQLAlchemyScope, session=session):
            session.add(Order(item="tea"))
            airlock.enqueue(record, "tea")
        raise RuntimeError("abort the transaction")
    assert EFFECTS == []
    with session.begin():  # a later commit on the same session does not resurrect them
        session.add(Order(item="coffee"))
    assert EFFECTS == []
    assert committed_items(engine) == ["coffee"]


def test_savepoint_rollback_voids_only_its_intents(engine: Engine, session: Session) -> None:
    with session.begin():
        with airlock.scope(_cls=SQLAlchemyScope, session=session):
            session.add(Order(item="kept-1"))
            airlock.enqueue(record, "kept-1")
            savepoint = session.begin_nested()
            session.add(Order(item="gone"))
            airlock.enqueue(record, "gone")
            savepoint.rollback()
            airlock.enqueue(record, "kept-2")
    assert EFFECTS == ["kept-1", "kept-2"]
    assert committed_items(engine) == ["kept-1"]


def test_released_savepoint_dispatches_and_nested_savepoints_follow_their_parents(
    engine: Engine, session: Session
) -> None:
    with session.begin():
        with airlock.scope(_cls=SQLAlchemyScope, session=session):
            with session.begin_nested():  # released
                airlock.enqueue(record, "released")
            outer = session.begin_nested()
            with session.begin_nested():  # released into `outer`...
                airlock.enqueue(record, "inner")
            outer.rollback()  # ...which rolls back: "inner" is void too
    assert EFFECTS == ["released"]


def test_intent_from_a_rolled_back_savepoint_stays_void_even_when_the_scope_flushes_outside(
    engine: Engine, session: Session
) -> None:
    # The scope encloses the whole transaction and flushes after it committed.
    with airlock.scope(_cls=SQLAlchemyScope, session=session) as scope:
        with session.begin():
            airlock.enqueue(record, "committed")
            with pytest.raises(ValueError), session.begin_nested():
                airlock.enqueue(record, "rolled-back")
                raise ValueError("undo the savepoint")
        assert EFFECTS == []  # the scope has not flushed yet
    assert scope.is_flushed
    assert EFFECTS == ["committed"]


def test_void_intent_is_dropped_by_an_enclosing_plain_scope_too(engine: Engine, session: Session) -> None:
    with airlock.scope() as outer:
        with session.begin():
            savepoint = session.begin_nested()
            with airlock.scope(_cls=SQLAlchemyScope, session=session):
                airlock.enqueue(record, "gone")
            # the inner scope has flushed (into `outer`) before the savepoint rolls back
            savepoint.rollback()
            with airlock.scope(_cls=SQLAlchemyScope, session=session):
                airlock.enqueue(record, "kept")
        assert [str(i) for i in outer.captured_intents] == ["record('gone')", "record('kept')"]
    assert EFFECTS == ["kept"]


def test_whole_transaction_rolled_back_voids_intents_flushed_later_elsewhere(session: Session) -> None:
    with airlock.scope() as outer:
        with pytest.raises(RuntimeError), session.begin():
            with airlock.scope(_cls=SQLAlchemyScope, session=session):
                airlock.enqueue(record, "gone")
            raise RuntimeError("abort")
        assert outer.captured_intents  # captured, but tied to a transaction that rolled back
    assert EFFECTS == []


def test_outside_a_transaction_the_intent_waits_for_the_next_one(engine: Engine, session: Session) -> None:
    assert not session.in_transaction()
    with airlock.scope(_cls=SQLAlchemyScope, session=session):
        airlock.enqueue(record_visible, engine, "tea")
        session.add(Order(item="tea"))  # pending: no transaction yet
    assert EFFECTS == []  # the data it speaks of is not written yet
    session.commit()  # begins the transaction the intent was tied to, and commits it
    assert EFFECTS == [("tea", True)]


def test_autobegun_transaction_is_waited_for(engine: Engine, session: Session) -> None:
    with airlock.scope(_cls=SQLAlchemyScope, session=session):
        airlock.enqueue(record, "later")
        session.add(Order(item="tea"))
        session.flush()  # autobegins the session's transaction
    assert EFFECTS == []
    session.commit()
    assert EFFECTS == ["later"]


def test_closing_the_session_without_commit_drops(session: Session) -> None:
    with airlock.scope(_cls=SQLAlchemyScope, session=session):
        session.add(Order(item="tea"))
        session.flush()
        airlock.enqueue(record, "gone")
    session.close()
    assert EFFECTS == []


def test_enqueue_during_the_session_flush_waits_for_commit(engine: Engine, session: Session) -> None:
    """Mapper events run inside the flush's sub-transaction, which is not a savepoint."""

    def after_insert(mapper: Any, connection: Any, target: Order) -> None:
        airlock.enqueue(record, f"inserted {target.item}")

    event.listen(Order, "after_insert", after_insert)
    try:
        with session.begin(), airlock.scope(_cls=SQLAlchemyScope, session=session):
            session.add(Order(item="tea"))
            session.flush()
    finally:
        event.remove(Order, "after_insert", after_insert)
    assert EFFECTS == ["inserted tea"]


def test_several_scopes_into_one_transaction_dispatch_in_order(session: Session) -> None:
    with session.begin():
        for n in range(3):
            with airlock.scope(_cls=SQLAlchemyScope, session=session):
                airlock.enqueue(record, f"scope-{n}")
        assert EFFECTS == []
    assert EFFECTS == ["scope-0", "scope-1", "scope-2"]


def test_policy_still_applies(session: Session) -> None:
    with (
        session.begin(),
        airlock.scope(airlock.BlockTasks({"failing"}), _cls=SQLAlchemyScope, session=session),
    ):
        airlock.enqueue(failing, "x")
        airlock.enqueue(record, "ok")
    assert EFFECTS == ["ok"]


def test_dispatch_failure_after_commit_raises_from_commit(engine: Engine, session: Session) -> None:
    with pytest.raises(airlock.DispatchError) as info:
        with session.begin():
            with airlock.scope(_cls=SQLAlchemyScope, session=session):
                session.add(Order(item="tea"))
                airlock.enqueue(failing, "first")
                airlock.enqueue(record, "second")
    assert [i.name for i, _ in info.value.failures] == ["failing"]
    assert EFFECTS == ["second"]  # every intent was attempted
    assert committed_items(engine) == ["tea"]  # and the data is committed
    assert not session.in_transaction()
    with session.begin():  # the session is still usable
        session.add(Order(item="coffee"))
    assert committed_items(engine) == ["tea", "coffee"]


def test_task_may_use_the_same_session_after_a_plain_commit(engine: Engine, session: Session) -> None:
    def count_orders() -> None:
        EFFECTS.append(session.scalar(select(func.count()).select_from(Order)))

    with airlock.scope(_cls=SQLAlchemyScope, session=session):
        session.add(Order(item="tea"))
        session.flush()
        airlock.enqueue(count_orders)
    session.commit()
    assert EFFECTS == [1]
    session.commit()  # the task's own (read-only) transaction


def test_observers_see_the_dispatch_after_commit(session: Session) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.dispatches: list[list[str]] = []

        def on_scope_end(self, event: airlock.ScopeEndEvent) -> None:
            pass

        def on_dispatch(self, event: airlock.DispatchEvent) -> None:
            self.dispatches.append([str(i) for i in event.intents])

    recorder = Recorder()
    airlock.add_observer(recorder)
    try:
        with session.begin():
            with airlock.scope(_cls=SQLAlchemyScope, session=session):
                airlock.enqueue(record, "x")
            assert recorder.dispatches == []  # nothing ran yet
    finally:
        airlock.remove_observer(recorder)
    assert recorder.dispatches == [["record('x')"]]


def test_scoped_decorator_and_scoped_session(engine: Engine) -> None:
    registry = scoped_session(sessionmaker(engine))
    try:

        @airlock.scoped(_cls=SQLAlchemyScope, session=registry)
        def place_order(item: str) -> SQLAlchemyScope:
            scope = airlock.get_current_scope()
            assert isinstance(scope, SQLAlchemyScope)
            registry.add(Order(item=item))
            airlock.enqueue(record_visible, engine, item)
            return scope

        with registry.begin():
            scope = place_order("tea")
            assert scope.session is registry()
            assert EFFECTS == []
        assert EFFECTS == [("tea", True)]
    finally:
        registry.remove()


def test_bad_sessions_are_refused_at_construction(engine: Engine) -> None:
    with pytest.raises(TypeError, match="session"):
        airlock.scope(_cls=SQLAlchemyScope)
    with pytest.raises(TypeError, match="needs a sqlalchemy.orm.Session, got 'db'"):
        SQLAlchemyScope(session="db")
    with pytest.raises(TypeError, match="use AsyncSQLAlchemyScope"):
        SQLAlchemyScope(session=AsyncSession())
    with pytest.raises(TypeError, match="use SQLAlchemyScope for a sync Session"):
        AsyncSQLAlchemyScope(session=Session(engine))


def test_async_scope_refuses_sync_use() -> None:
    scope = AsyncSQLAlchemyScope(session=AsyncSession())
    with pytest.raises(airlock.UsageError, match="async with"):
        with scope:
            pass


def test_one_listener_pair_per_session(engine: Engine, session: Session) -> None:
    for _ in range(5):
        SQLAlchemyScope(session=session)
    with session.begin(), airlock.scope(_cls=SQLAlchemyScope, session=session):
        airlock.enqueue(record, "once")
    assert EFFECTS == ["once"]


# -- AsyncSession --------------------------------------------------------------------------


@asynccontextmanager
async def async_engine(url: str) -> AsyncIterator[AsyncEngine]:
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


async def async_committed_items(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list(await connection.scalars(select(Order.item).order_by(Order.id)))


async def record_visible_async(engine: AsyncEngine, item: str) -> None:
    EFFECTS.append((item, item in await async_committed_items(engine)))


def test_async_commit_awaits_coroutine_tasks_after_commit(backend: dict[str, str]) -> None:
    async def main() -> None:
        async with async_engine(backend["async"]) as engine, AsyncSession(engine) as session:
            async with session.begin():
                async with airlock.scope(_cls=AsyncSQLAlchemyScope, session=session) as scope:
                    session.add(Order(item="tea"))
                    airlock.enqueue(record_visible_async, engine, "tea")
                    airlock.enqueue(record, "sync-task")
                assert scope.is_flushed and scope.session is session
                await session.flush()
                assert EFFECTS == []
            # `await session.commit()` (here: leaving session.begin()) returned after the tasks ran
            assert EFFECTS == [("tea", True), "sync-task"]

    asyncio.run(main())


def test_async_rollback_and_savepoint_rollback(backend: dict[str, str]) -> None:
    async def main() -> None:
        async with async_engine(backend["async"]) as engine, AsyncSession(engine) as session:
            with pytest.raises(RuntimeError):
                async with session.begin():
                    async with airlock.scope(_cls=AsyncSQLAlchemyScope, session=session):
                        airlock.enqueue(record_async, "rolled-back")
                    raise RuntimeError("abort")
            assert EFFECTS == []

            async with session.begin():
                async with airlock.scope(_cls=AsyncSQLAlchemyScope, session=session):
                    session.add(Order(item="kept"))
                    airlock.enqueue(record_async, "kept")
                    savepoint = await session.begin_nested()
                    session.add(Order(item="gone"))
                    airlock.enqueue(record_async, "gone")
                    await savepoint.rollback()
            assert EFFECTS == ["kept"]
            assert await async_committed_items(engine) == ["kept"]

    asyncio.run(main())


def test_async_scope_enclosing_the_transaction_and_outside_any(backend: dict[str, str]) -> None:
    async def main() -> None:
        async with async_engine(backend["async"]) as engine, AsyncSession(engine) as session:
            async with airlock.scope(_cls=AsyncSQLAlchemyScope, session=session):
                airlock.enqueue(record_async, "no-transaction")
            assert EFFECTS == []  # tied to the next transaction begun on the session
            async with session.begin():
                pass
            assert EFFECTS == ["no-transaction"]

            async with airlock.scope(_cls=AsyncSQLAlchemyScope, session=session):
                async with session.begin():
                    airlock.enqueue(record_async, "committed")
                    try:
                        async with session.begin_nested():
                            airlock.enqueue(record_async, "savepoint")
                            raise ValueError("undo")
                    except ValueError:
                        pass
                assert EFFECTS == ["no-transaction"]
            assert EFFECTS == ["no-transaction", "committed"]

    asyncio.run(main())


def test_async_scoped_decorator_with_async_scoped_session(backend: dict[str, str]) -> None:
    async def main() -> None:
        async with async_engine(backend["async"]) as engine:
            registry = async_scoped_session(async_sessionmaker(engine), scopefunc=asyncio.current_task)

            @airlock.scoped(_cls=AsyncSQLAlchemyScope, session=registry)
            async def place_order(item: str) -> None:
                registry.add(Order(item=item))
                airlock.enqueue(record_async, item)
                await registry.flush()

            await place_order("tea")  # the flush autobegan a transaction: the intent waits for it
            assert EFFECTS == []
            await registry.commit()
            assert EFFECTS == ["tea"]
            await registry.remove()

    asyncio.run(main())


def test_async_dispatch_failure_raises_from_commit(backend: dict[str, str]) -> None:
    async def main() -> None:
        async with async_engine(backend["async"]) as engine, AsyncSession(engine) as session:
            with pytest.raises(airlock.DispatchError):
                async with session.begin():
                    async with airlock.scope(_cls=AsyncSQLAlchemyScope, session=session):
                        session.add(Order(item="tea"))
                        airlock.enqueue(failing, "x")
                        airlock.enqueue(record_async, "after")
            assert EFFECTS == ["after"]
            assert await async_committed_items(engine) == ["tea"]

    asyncio.run(main())


def test_async_flush_of_a_sync_session_committed_synchronously_runs_what_it_can(session: Session) -> None:
    """``async with SQLAlchemyScope`` on a sync Session: a sync commit cannot await coroutine tasks.

    They fail loudly in the DispatchError; the sync tasks still run.
    """

    async def main() -> None:
        session.begin()
        async with airlock.scope(_cls=SQLAlchemyScope, session=session):
            airlock.enqueue(record, "sync")
            airlock.enqueue(record_async, "coroutine")
        with pytest.raises(airlock.DispatchError) as info:
            session.commit()
        assert [i.name for i, _ in info.value.failures] == ["record_async"]
        assert isinstance(info.value.failures[0][1], airlock.UsageError)

    asyncio.run(main())
    assert EFFECTS == ["sync"]


# -- the example -----------------------------------------------------------------------------


def test_sqlalchemy_example(tmp_path: Path) -> None:
    example = load_example("sqlalchemy_app")
    result = example.main(f"sqlite:///{tmp_path / 'shop.db'}")
    assert result == {
        "orders": ["tea", "scone"],
        "sent": ["receipt for tea", "receipt for scone"],
    }
    assert asyncio.run(example.amain(f"sqlite+aiosqlite:///{tmp_path / 'ashop.db'}")) == {
        "orders": ["coffee"],
        "sent": ["receipt for coffee"],
    }
