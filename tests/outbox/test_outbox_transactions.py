"""Effects follow their data (SPEC §5.1, §5.6): rows are written in the transaction their intents were
made in, an outbox scope nested in another keeps its durability, and ordering keys follow COMMIT order.

PostgreSQL, MariaDB and SQLite (the ``storage`` fixture).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import outbox_support
import pytest
from outbox_helpers import fresh_storage
from outbox_support import record
from sqlalchemy import event, select
from sqlalchemy.orm import Session

import airlock
from airlock.outbox import ORDERING_KEY_OPTION, OutboxScope, Relay, SQLAlchemyStorage


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    outbox_support.seen.clear()


def committed_args(storage: SQLAlchemyStorage) -> list[Any]:
    """What another connection sees: the committed rows' arguments, in seq order."""
    with storage.engine.connect() as conn:
        t = storage.table
        return [json.loads(a) for a in conn.scalars(select(t.c.args).order_by(t.c.seq))]


def test_scoped_function_that_commits_stores_its_rows_in_that_commit(storage: SQLAlchemyStorage) -> None:
    seen_after_commit: list[Any] = []
    with Session(storage.engine) as session:

        @airlock.scoped(_cls=OutboxScope, session=session, table=storage.table)
        def place_order() -> None:
            airlock.enqueue(record, 1)
            airlock.enqueue(record, 2)
            session.commit()
            # The commit is done and the scope still open: the rows are already committed with it.
            seen_after_commit.extend(committed_args(storage))
            session.begin()
            airlock.enqueue(record, 3)  # the next transaction: written at the flush, in it
            session.commit()

        place_order()
    assert seen_after_commit == [[1], [2]]
    assert committed_args(storage) == [[1], [2], [3]]


def test_scope_exiting_after_its_commit_reports_exactly_the_rows_that_exist(
    storage: SQLAlchemyStorage,
) -> None:
    with Session(storage.engine) as session:
        with airlock.scope(_cls=OutboxScope, session=session, table=storage.table) as scope:
            airlock.enqueue(record, 1)
            session.commit()
            airlock.enqueue(record, 2)  # no transaction now: belongs to the next one begun
            with pytest.raises(KeyError), session.begin():
                airlock.enqueue(record, 3)
                raise KeyError  # rolled back: 2 and 3 never happened
        assert len(scope.stored_ids) == 1  # type: ignore[attr-defined]
    with storage.engine.connect() as conn:
        ids = list(conn.scalars(select(storage.table.c.id)))
    assert ids == scope.stored_ids  # type: ignore[attr-defined]
    assert committed_args(storage) == [[1]]


def test_commit_failing_after_the_rows_were_written_reports_no_row(storage: SQLAlchemyStorage) -> None:
    with Session(storage.engine) as session:
        with airlock.scope(_cls=OutboxScope, session=session, table=storage.table) as scope:
            airlock.enqueue(record, 1)

            def fail(session: Session) -> None:
                raise RuntimeError("commit refused")

            event.listen(session, "before_commit", fail)  # runs after the outbox's own listener
            with pytest.raises(RuntimeError, match="commit refused"):
                session.commit()
            event.remove(session, "before_commit", fail)
            session.rollback()
        assert scope.stored_ids == []  # type: ignore[attr-defined]
    assert committed_args(storage) == []


def test_intent_committed_while_held_by_a_nested_scope_raises_at_the_exit(storage: SQLAlchemyStorage) -> None:
    with Session(storage.engine) as session:
        with pytest.raises(
            airlock.UsageError, match=r"cannot store 1 intent\(s\) \(record\).*already committed"
        ):
            with airlock.scope(_cls=OutboxScope, session=session, table=storage.table) as scope:
                with airlock.scope():  # holds the intent in memory while the transaction commits
                    session.begin()
                    airlock.enqueue(record, 1)
                    session.commit()
    assert scope.stored_ids == [] and committed_args(storage) == []  # type: ignore[attr-defined]


def test_policies_still_judge_rows_written_at_commit(storage: SQLAlchemyStorage) -> None:
    with Session(storage.engine) as session:
        with airlock.scope(policy=airlock.BlockTasks({"record"})):
            with airlock.scope(_cls=OutboxScope, session=session, table=storage.table) as scope:
                airlock.enqueue(outbox_support.record_with_id, 1)
                airlock.enqueue(record, 2)  # blocked by the enclosing scope's policy
                with airlock.policy(airlock.DropAll()):
                    airlock.enqueue(outbox_support.record_with_id, 3)
                session.commit()
    assert committed_args(storage) == [[1]] and len(scope.stored_ids) == 1  # type: ignore[attr-defined]


# -- nested in another scope: durable, judged by every enclosing policy, never captured ---------


def test_nested_outbox_scope_stores_at_its_own_flush(storage: SQLAlchemyStorage) -> None:
    with airlock.scope() as request_scope:
        with Session(storage.engine) as session, session.begin():
            with airlock.scope(_cls=OutboxScope, session=session, table=storage.table) as scope:
                airlock.enqueue(record, 1)
            assert len(scope.stored_ids) == 1  # type: ignore[attr-defined]
        assert committed_args(storage) == [[1]]  # committed with the data, not waiting for the request
    assert request_scope.captured_intents == [] and request_scope.intents == []
    assert outbox_support.seen == []  # stored, not run in-process by the request scope


def test_dry_run_around_an_outbox_scope_stores_nothing(storage: SQLAlchemyStorage) -> None:
    with airlock.scope(policy=airlock.DropAll()):
        with Session(storage.engine) as session, session.begin():
            with airlock.scope(_cls=OutboxScope, session=session, table=storage.table) as scope:
                airlock.enqueue(record, 1)
            with airlock.scope(_cls=OutboxScope, session=session, table=storage.table):
                airlock.enqueue(record, 2)
                session.commit()  # written at commit: judged by the dry run all the same
    assert committed_args(storage) == [] and scope.stored_ids == []  # type: ignore[attr-defined]


def test_each_enclosing_policy_instance_judges_once(storage: SQLAlchemyStorage) -> None:
    calls: list[str] = []

    class Counting(airlock.Policy):
        def allows(self, intent: airlock.Intent) -> bool:
            calls.append(intent.name)
            return True

    policy = Counting()
    with airlock.scope(policy=policy), airlock.scope(policy=policy):
        with Session(storage.engine) as session, session.begin():
            with airlock.scope(_cls=OutboxScope, session=session, table=storage.table):
                airlock.enqueue(record, 1)
    assert calls == ["record"] and committed_args(storage) == [[1]]


# -- enqueue-time checks ------------------------------------------------------------------------


def test_coroutine_task_is_accepted_in_a_sync_outbox_scope(storage: SQLAlchemyStorage) -> None:
    from outbox_support_async import arecord

    with Session(storage.engine) as session, session.begin():
        with airlock.scope(_cls=OutboxScope, session=session, table=storage.table):
            airlock.enqueue(arecord, 7)
            with airlock.scope():  # a plain scope nested in it hands the intent to the outbox
                airlock.enqueue(arecord, 8)
    Relay(storage, idle_max=0.05).run(until_idle=True, handle_signals=False)
    assert outbox_support.seen == [("async", 7), ("async", 8)]


def test_coroutine_task_is_still_refused_by_a_sync_plain_scope() -> None:
    from outbox_support_async import arecord

    with airlock.scope(), pytest.raises(airlock.UsageError, match="coroutine function"):
        airlock.enqueue(arecord, 1)


@pytest.fixture(
    params=["sqlite", "postgres"]
)  # the async drivers of the test dependencies: aiosqlite, asyncpg
def async_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLAlchemyStorage]:
    url = (
        f"sqlite:///{tmp_path / 'outbox.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    with fresh_storage(url) as storage:
        yield storage


def test_async_session_with_async_with(async_storage: SQLAlchemyStorage) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    storage = async_storage
    url = storage.engine.url
    async_url = url.set(
        drivername="sqlite+aiosqlite" if url.get_backend_name() == "sqlite" else "postgresql+asyncpg"
    )

    async def main() -> tuple[list[str], list[str]]:
        engine = create_async_engine(async_url)
        try:
            async with AsyncSession(engine) as session:
                async with session.begin():
                    async with airlock.scope(_cls=OutboxScope, session=session, table=storage.table) as first:
                        airlock.enqueue(record, 1, _dispatch_options={ORDERING_KEY_OPTION: "k"})
                async with airlock.scope(_cls=OutboxScope, session=session, table=storage.table) as second:
                    await session.begin()
                    airlock.enqueue(record, 2)
                    await session.commit()  # written in before_commit, inside the AsyncSession's commit
                with pytest.raises(airlock.UsageError, match="use 'async with"):
                    with airlock.scope(_cls=OutboxScope, session=session, table=storage.table):
                        airlock.enqueue(record, 3)
                await session.rollback()
        finally:
            await engine.dispose()
        return first.stored_ids, second.stored_ids  # type: ignore[attr-defined]

    first, second = asyncio.run(main())
    assert len(first) == 1 and len(second) == 1
    assert committed_args(storage) == [[1], [2]]


# -- ordering keys follow COMMIT order -----------------------------------------------------------


def test_ordering_key_rows_follow_commit_order_not_insert_order(storage: SQLAlchemyStorage) -> None:
    """A inserts first; B inserts second and tries to commit first; A commits after. The relay sees
    the rows in the order the database actually committed them, one row of the key in flight at a time."""
    key = {ORDERING_KEY_OPTION: "customer:1"}
    commits: list[str] = []

    def tracked(label: str) -> Session:
        session = Session(storage.engine)
        event.listen(session, "after_commit", lambda s: commits.append(label))
        return session

    a = tracked("A")
    a.begin()
    with airlock.scope(_cls=OutboxScope, session=a, table=storage.table):
        airlock.enqueue(record, 1, label="A", _dispatch_options=key)  # A's row is inserted now

    b_done = threading.Event()
    errors: list[BaseException] = []

    def run_b() -> None:
        try:
            with tracked("B") as b, b.begin():
                with airlock.scope(_cls=OutboxScope, session=b, table=storage.table):
                    airlock.enqueue(record, 2, label="B", _dispatch_options=key)
                # B commits as soon as its insert goes through.
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            b_done.set()

    thread = threading.Thread(target=run_b)
    thread.start()
    try:
        b_done.wait(1.0)  # without the key lock, B would have inserted and committed by now
        # A relay polling meanwhile (SQLite: no claim can run while A holds the write lock).
        early_token, early = storage.claim(10, lease=60) if storage.dialect != "sqlite" else ("", [])
        a.commit()
    finally:
        a.close()
        thread.join(30)
    assert not errors, errors
    late_token, late = storage.claim(10, lease=60)
    assert not (early and late), "two rows of one key in flight at once"
    storage.finish(early_token, [], [], [r.id for r in early])
    storage.finish(late_token, [], [], [r.id for r in late])
    Relay(storage, idle_max=0.05).run(until_idle=True, handle_signals=False)
    assert [label for _, label in outbox_support.seen] == commits  # dispatched in commit order
    assert commits == ["A", "B"]  # B's insert waited on the key's lock until A committed


def test_transaction_closed_without_commit_voids_its_intents(storage: SQLAlchemyStorage) -> None:
    session = Session(storage.engine)
    with airlock.scope(_cls=OutboxScope, session=session, table=storage.table) as scope:
        session.begin()
        airlock.enqueue(record, 1)
        session.close()  # ends the transaction without a commit (and without a rollback event)
    assert scope.stored_ids == [] and committed_args(storage) == []  # type: ignore[attr-defined]
