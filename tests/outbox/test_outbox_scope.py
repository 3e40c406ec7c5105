"""OutboxScope on a SQLAlchemy Session: rows join the business transaction (PostgreSQL, SQLite, MariaDB)."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import json
import uuid
from typing import Any

import pytest
from outbox_support import backend_task, record
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

import airlock
from airlock.outbox import (
    ORDERING_KEY_OPTION,
    OutboxScope,
    OutboxSerializationError,
    SQLAlchemyStorage,
)


def rows(storage: SQLAlchemyStorage) -> list[Any]:
    with storage.engine.connect() as conn:
        return list(conn.execute(select(storage.table).order_by(storage.table.c.seq)).mappings())


def count(storage: SQLAlchemyStorage, table: Table) -> int:
    with storage.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def outbox(session: Session, storage: SQLAlchemyStorage, **kwargs: Any) -> airlock.Scope:
    return airlock.scope(_cls=OutboxScope, session=session, table=storage.table, **kwargs)


def test_commit_stores_rows_with_business_data(storage: SQLAlchemyStorage, orders: Table) -> None:
    with Session(storage.engine) as session, session.begin():
        session.execute(insert(orders).values(id=1, label="order"))
        with outbox(session, storage) as scope:
            airlock.enqueue(record, 1, label="a")
            airlock.enqueue(backend_task, 2, _dispatch_options={"queue": "q1", "countdown": 5})
            assert [i.name for i in scope.intents] == ["record", "backend_task"]
        # Flushed = inserted, not yet committed: nothing dispatched, nothing visible elsewhere.
        assert len(scope.stored_ids) == 2
    stored = rows(storage)
    assert count(storage, orders) == 1
    assert [r["id"] for r in stored] == scope.stored_ids
    assert [r["task"] for r in stored] == ["outbox_support:record", "outbox_support:backend_task"]
    assert json.loads(stored[0]["args"]) == [1] and json.loads(stored[0]["kwargs"]) == {"label": "a"}
    assert stored[0]["options"] is None
    assert json.loads(stored[1]["options"]) == {"queue": "q1", "countdown": 5}
    assert {r["state"] for r in stored} == {"pending"} and {r["attempts"] for r in stored} == {0}
    assert stored[0]["seq"] < stored[1]["seq"]


def test_rollback_leaves_no_row(storage: SQLAlchemyStorage, orders: Table) -> None:
    with Session(storage.engine) as session:
        with pytest.raises(KeyError):
            with session.begin():
                session.execute(insert(orders).values(id=1, label="order"))
                with outbox(session, storage) as scope:
                    airlock.enqueue(record, 1)
                assert len(scope.stored_ids) == 1  # inserted in the transaction...
                raise KeyError("business failure after the flush")
    assert rows(storage) == []  # ...and rolled back with it
    assert count(storage, orders) == 0


def test_exception_in_scope_discards(storage: SQLAlchemyStorage) -> None:
    with Session(storage.engine) as session, session.begin():
        with pytest.raises(ValueError):
            with outbox(session, storage) as scope:
                airlock.enqueue(record, 1)
                raise ValueError
    assert scope.is_discarded and scope.stored_ids == []
    assert rows(storage) == []


def test_savepoint_rolled_back_before_the_flush_voids_its_intents(storage: SQLAlchemyStorage) -> None:
    with Session(storage.engine) as session, session.begin():
        with outbox(session, storage) as scope:
            airlock.enqueue(record, 1)
            with pytest.raises(KeyError):
                with session.begin_nested():
                    airlock.enqueue(record, 2)
                    with session.begin_nested():
                        airlock.enqueue(record, 3)  # released into the savepoint that rolls back
                    raise KeyError
            with session.begin_nested():
                airlock.enqueue(record, 4)  # released: survives
            airlock.enqueue(record, 5)
    assert [json.loads(r["args"]) for r in rows(storage)] == [[1], [4], [5]]
    assert len(scope.stored_ids) == 3


def test_flush_inside_a_savepoint_that_rolls_back_leaves_no_row(storage: SQLAlchemyStorage) -> None:
    with Session(storage.engine) as session, session.begin():
        with outbox(session, storage):
            airlock.enqueue(record, 1)
        with pytest.raises(KeyError):
            with session.begin_nested():
                with outbox(session, storage) as inner:
                    airlock.enqueue(record, 2)
                assert len(inner.stored_ids) == 1
                raise KeyError
    assert [json.loads(r["args"]) for r in rows(storage)] == [[1]]


def test_transaction_rolled_back_before_the_flush_voids_its_intents(storage: SQLAlchemyStorage) -> None:
    with Session(storage.engine) as session:
        with outbox(session, storage) as scope:
            session.begin()
            airlock.enqueue(record, 1)
            session.rollback()
            session.begin()
            airlock.enqueue(record, 2)
        session.commit()
    assert [json.loads(r["args"]) for r in rows(storage)] == [[2]]
    assert len(scope.stored_ids) == 1


def test_policies_and_nesting_decide_what_is_stored(storage: SQLAlchemyStorage) -> None:
    with Session(storage.engine) as session, session.begin():
        with outbox(session, storage, policy=airlock.BlockTasks({"backend_task"})) as scope:
            airlock.enqueue(record, 1)
            airlock.enqueue(backend_task, 2)  # blocked by the outbox scope's policy
            with airlock.scope(policy=airlock.DropAll()):
                airlock.enqueue(record, 3)  # captured, then dropped by the inner policy: never stored
            with airlock.scope() as inner:
                airlock.enqueue(record, 4)
            assert inner.is_flushed and [i.args for i in scope.captured_intents] == [(3,), (4,)]
            with airlock.policy(airlock.DropAll()):
                airlock.enqueue(record, 5)
    assert [json.loads(r["args"]) for r in rows(storage)] == [[1], [4]]


def test_nested_scope_intents_are_checked_at_enqueue(storage: SQLAlchemyStorage) -> None:
    with Session(storage.engine) as session, session.begin():
        with outbox(session, storage):
            with airlock.scope():
                with pytest.raises(OutboxSerializationError, match="record: argument 0"):
                    airlock.enqueue(record, {1: "int key"})


def test_configure_makes_the_outbox_the_default(storage: SQLAlchemyStorage) -> None:
    with Session(storage.engine) as session, session.begin():
        airlock.configure(scope_cls=OutboxScope, scope_kwargs={"session": session, "table": storage.table})

        @airlock.scoped
        def place_order() -> None:
            airlock.enqueue(record, 7)

        place_order()
        with airlock.scope() as scope:
            airlock.enqueue(record, 8)
        assert isinstance(scope, OutboxScope)
    assert [json.loads(r["args"]) for r in rows(storage)] == [[7], [8]]


def test_async_scope_stores_rows(storage: SQLAlchemyStorage) -> None:
    async def main(session: Session) -> list[str]:
        async with outbox(session, storage) as scope:
            airlock.enqueue(record, 1)
        assert isinstance(scope, OutboxScope)
        return scope.stored_ids

    with Session(storage.engine) as session, session.begin():
        ids = asyncio.run(main(session))
    assert [r["id"] for r in rows(storage)] == ids and len(ids) == 1


def test_ordering_key_is_stored_apart_from_options(storage: SQLAlchemyStorage) -> None:
    with Session(storage.engine) as session, session.begin():
        with outbox(session, storage):
            airlock.enqueue(record, 1, _dispatch_options={ORDERING_KEY_OPTION: "customer:1", "queue": "q"})
    (row,) = rows(storage)
    assert row["ordering_key"] == "customer:1" and json.loads(row["options"]) == {"queue": "q"}


def test_rows_keep_enqueue_order_and_every_value(storage: SQLAlchemyStorage) -> None:
    # 1,201 rows: PostgreSQL writes them in one statement (as one JSON document), the others in
    # 500-row chunks; each row must come back with its own values, in enqueue order (seq), with
    # a UUID4 id. The values hold what an encoding could garble: quotes, backslashes, non-ASCII,
    # a character outside the BMP, and a NUL inside an argument (stored escaped, in JSON).
    n = 1201
    odd = "é\x00\\\"'🙂"
    with Session(storage.engine) as session, session.begin():
        with outbox(session, storage, origin="orders/ü") as scope:
            for i in range(n):
                options = {ORDERING_KEY_OPTION: f"k{i % 3}ß"} if i % 100 == 0 else None
                airlock.enqueue(record, i, label=f"{odd}{i}", _name=f"n{i}€", _dispatch_options=options)
    stored = rows(storage)
    assert [r["id"] for r in stored] == scope.stored_ids and len(set(scope.stored_ids)) == n
    assert all(uuid.UUID(r["id"]).version == 4 and str(uuid.UUID(r["id"])) == r["id"] for r in stored)
    assert [json.loads(r["args"]) for r in stored] == [[i] for i in range(n)]
    assert [json.loads(r["kwargs"]) for r in stored] == [{"label": f"{odd}{i}"} for i in range(n)]
    assert [r["name"] for r in stored] == [f"n{i}€" for i in range(n)]
    assert [r["ordering_key"] for r in stored] == [f"k{i % 3}ß" if i % 100 == 0 else None for i in range(n)]
    assert {(r["state"], r["attempts"], r["origin"], r["task"], r["options"]) for r in stored} == {
        ("pending", 0, "orders/ü", "outbox_support:record", None)
    }
    assert len({r["created_at"] for r in stored}) == 1 and stored[0]["created_at"] is not None


def test_a_session_that_binds_tables_to_engines_stores_in_the_outbox_tables_engine(
    storage: SQLAlchemyStorage, orders: Table
) -> None:
    # No default bind: each table names its engine (binds=...), as in a session over several
    # databases. The rows (and the ordering-key lock) go through the outbox table's own bind.
    binds = {orders: storage.engine, storage.table: storage.engine}  # the key table goes with it
    with Session(binds=binds) as session, session.begin():
        session.execute(insert(orders).values(id=1, label="order"))
        with outbox(session, storage):
            airlock.enqueue(record, 1, _dispatch_options={ORDERING_KEY_OPTION: "k"})
            airlock.enqueue(record, 2)
    assert [(json.loads(r["args"]), r["ordering_key"]) for r in rows(storage)] == [([1], "k"), ([2], None)]
    assert count(storage, orders) == 1


def test_postgres_notify_is_delivered_at_commit(pg_storage: SQLAlchemyStorage) -> None:
    storage = pg_storage
    assert storage.wait(0.01) is False  # LISTEN is now in place
    with Session(storage.engine) as session:
        with outbox(session, storage):
            airlock.enqueue(record, 1)
        assert storage.wait(0.2) is False  # not committed: nothing announced
        session.commit()
    assert storage.wait(5) is True


# -- bad input: refused at the enqueue line, naming the task and the argument --------------


class NotJson:
    pass


@pytest.mark.parametrize(
    ("args", "kwargs", "options", "message"),
    [
        ((dt.datetime(2024, 1, 1),), {}, None, r"record: argument 0 datetime\.datetime\(2024.* is not JSON"),
        ((1,), {"label": decimal.Decimal("1.5")}, None, r"record: keyword argument 'label' Decimal"),
        (((1, 2),), {}, None, r"argument 0 \(1, 2\) would not come back the same.*\[1, 2\]"),
        (({1: "a"},), {}, None, r"argument 0 \{1: 'a'\} would not come back the same"),
        ((float("nan"),), {}, None, r"argument 0 nan is not JSON"),
        ((NotJson(),), {}, None, r"argument 0 <.*NotJson object.*> is not JSON"),
        ((1,), {}, {"eta": dt.datetime(2024, 1, 1)}, r"record: dispatch option 'eta'"),
        ((1,), {}, {ORDERING_KEY_OPTION: 5}, r"'outbox_ordering_key' must be a non-empty string"),
        (("caf\udce9",), {}, None, r"record: argument 0 'caf\\udce9' holds a string that cannot be encoded"),
        ((1,), {"label": ["ok", {"k": "\ud800"}]}, None, r"keyword argument 'label' .* cannot be encoded"),
        ((1,), {}, {"queue": "q\udc80"}, r"dispatch option 'queue' .* cannot be encoded as UTF-8"),
        (
            (1,),
            {},
            {ORDERING_KEY_OPTION: "k\udc80"},
            r"dispatch option 'outbox_ordering_key' .* cannot be encoded",
        ),
        ((1,), {}, {ORDERING_KEY_OPTION: "k\x00"}, r"'outbox_ordering_key' holds a NUL character"),
    ],
)
def test_unstorable_arguments_fail_at_enqueue(
    tmp_path: Any, args: tuple[Any, ...], kwargs: dict[str, Any], options: Any, message: str
) -> None:
    storage = SQLAlchemyStorage.from_url(f"sqlite:///{tmp_path / 'o.db'}")
    storage.create_table()
    with Session(storage.engine) as session, session.begin():
        with airlock.scope(_cls=OutboxScope, session=session) as scope:
            with pytest.raises(OutboxSerializationError, match=message) as caught:
                airlock.enqueue(record, *args, _dispatch_options=options, **kwargs)
            assert scope.intents == []  # refused: not buffered
            assert isinstance(caught.value, TypeError) and isinstance(caught.value, airlock.UsageError)
    assert rows(storage) == []


def test_tasks_without_a_stable_reference_fail_at_enqueue(tmp_path: Any) -> None:
    storage = SQLAlchemyStorage.from_url(f"sqlite:///{tmp_path / 'o.db'}")

    def local_task() -> None: ...

    with Session(storage.engine) as session, airlock.scope(_cls=OutboxScope, session=session):
        with pytest.raises(OutboxSerializationError, match=r"<lambda>.*not importable"):
            airlock.enqueue(lambda: None)
        with pytest.raises(OutboxSerializationError, match=r"local_task.*not importable"):
            airlock.enqueue(local_task)


def test_outbox_scope_needs_a_session() -> None:
    with pytest.raises(TypeError, match=r"OutboxScope\(session=\.\.\.\) needs the SQLAlchemy Session"):
        airlock.scope(_cls=OutboxScope)
    with pytest.raises(TypeError, match=r"OutboxScope\(table=\.\.\.\) needs a sqlalchemy.Table"):
        OutboxScope(session=Session(), table="airlock_outbox")  # type: ignore[arg-type]


def test_table_is_alembic_friendly(storage: SQLAlchemyStorage) -> None:
    from alembic.autogenerate import compare_metadata, produce_migrations, render_python_code
    from alembic.migration import MigrationContext
    from sqlalchemy import MetaData

    from airlock.outbox import outbox_table

    metadata = MetaData()
    outbox_table(metadata, storage.table.name)  # added to the application's own metadata
    with storage.engine.connect() as conn:
        name = storage.table.name
        only_ours = {
            "compare_type": True,
            "include_name": lambda n, kind, _: kind != "table" or n in (name, f"{name}_keys"),
        }
        context = MigrationContext.configure(conn, opts=only_ours)
        assert compare_metadata(context, metadata) == []  # what `init` created is what autogenerate expects
        empty = MigrationContext.configure(conn, opts={"include_name": lambda *a: False})
    code = render_python_code(produce_migrations(empty, metadata).upgrade_ops)
    assert f"op.create_table('{storage.table.name}'" in code and "sa.Column('ordering_key'" in code


def test_surrogate_in_origin_fails_at_enqueue(tmp_path: Any) -> None:
    storage = SQLAlchemyStorage.from_url(f"sqlite:///{tmp_path / 'o.db'}")
    with Session(storage.engine) as session, airlock.scope(_cls=OutboxScope, session=session):
        with pytest.raises(OutboxSerializationError, match=r"record: the origin holds a string that cannot"):
            airlock.enqueue(record, 1, _origin="/orders/\udcff")


@pytest.mark.parametrize("where", ["_origin", "_name"])
def test_nul_in_a_text_column_fails_at_enqueue(tmp_path: Any, where: str) -> None:
    # The name and origin are stored as they are (not inside JSON, which escapes a NUL):
    # no database's text column holds a NUL, so the flush would fail at commit.
    storage = SQLAlchemyStorage.from_url(f"sqlite:///{tmp_path / 'o.db'}")
    with Session(storage.engine) as session, airlock.scope(_cls=OutboxScope, session=session) as scope:
        with pytest.raises(OutboxSerializationError, match=r"holds a NUL character"):
            airlock.enqueue(record, 1, **{where: "a\x00b"})
        assert scope.intents == []


MAIN_SCRIPT = """
import sys
from sqlalchemy.orm import Session
import airlock
from airlock.outbox import OutboxScope, SQLAlchemyStorage

def send_receipt(order_id):  # lives in __main__: no other process can import it
    pass

storage = SQLAlchemyStorage.from_url(sys.argv[1])
storage.create_table()
with Session(storage.engine) as session, session.begin():
    with airlock.scope(_cls=OutboxScope, session=session):
        try:
            airlock.enqueue(send_receipt, 1)
        except airlock.outbox.OutboxSerializationError as exc:
            print("refused:", exc)
"""


def test_task_defined_in_main_fails_at_enqueue(tmp_path: Any) -> None:
    import subprocess

    from outbox_helpers import PYTHON, subprocess_env

    done = subprocess.run(
        [PYTHON, "-c", MAIN_SCRIPT, f"sqlite:///{tmp_path / 'o.db'}"],
        env=subprocess_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "refused: the outbox cannot store the task <function send_receipt" in done.stdout
    assert "defined in __main__" in done.stdout and "move it into a module" in done.stdout
    storage = SQLAlchemyStorage.from_url(f"sqlite:///{tmp_path / 'o.db'}")
    assert rows(storage) == []
