"""The relay, in-process: order, idempotency keys, retries, dead letters, leases, pruning, stopping."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import outbox_support
import pytest
from outbox_support import backend_task, poison, record, record_with_id
from sqlalchemy import select, update
from sqlalchemy.orm import Session

import airlock
from airlock.outbox import (
    ORDERING_KEY_OPTION,
    OutboxScope,
    Relay,
    SQLAlchemyStorage,
    current_outbox_id,
)
from airlock.outbox.__main__ import main as cli


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    outbox_support.seen.clear()


def store(
    storage: SQLAlchemyStorage, *calls: tuple[Any, ...], options: dict[str, Any] | None = None
) -> list[str]:
    """Commit one outbox row per ``(task, *args)`` and return their ids."""
    with Session(storage.engine) as session, session.begin():
        with airlock.scope(_cls=OutboxScope, session=session, table=storage.table) as scope:
            for task, *args in calls:
                airlock.enqueue(task, *args, _dispatch_options=options)
    return scope.stored_ids  # type: ignore[attr-defined, no-any-return]


def states(storage: SQLAlchemyStorage) -> dict[str, tuple[str, int, str | None]]:
    t = storage.table
    with storage.engine.connect() as conn:
        return {r.id: (r.state, r.attempts, r.last_error) for r in conn.execute(select(t))}


def relay(storage: SQLAlchemyStorage, executor: Callable[..., Any] | None = None, **kwargs: Any) -> Relay:
    kwargs.setdefault("idle_max", 0.05)
    return Relay(storage, executor or airlock.get_configuration()["executor"], **kwargs)


def make_due(storage: SQLAlchemyStorage) -> None:
    """Skip the retry wait of failed rows (the backoff itself is checked on the stored times)."""
    with storage.engine.begin() as conn:
        conn.execute(update(storage.table).values(available_at=None))


def test_relay_dispatches_in_commit_order_and_marks_done(storage: SQLAlchemyStorage) -> None:
    first = store(storage, (record, 1), (record, 2))
    second = store(storage, (record, 3))
    stats = relay(storage, batch_size=2).run(until_idle=True, handle_signals=False)
    assert outbox_support.seen == [(1, ""), (2, ""), (3, "")]
    assert stats.dispatched == 3 and stats.batches == 2
    assert {v[0] for v in states(storage).values()} == {"done"}
    assert set(states(storage)) == set(first + second)
    assert storage.status().as_dict() == {
        "pending": 0, "in_flight": 0, "failed": 0, "dead": 0, "done": 3, "oldest_age": None,
    }  # fmt: skip


def test_row_id_reaches_the_task_as_idempotency_key(storage: SQLAlchemyStorage) -> None:
    ids = store(storage, (record_with_id, 1), (backend_task, 2))
    ids += store(storage, (backend_task, 3), options={"task_id": "mine", "queue": "q"})
    keys: list[str | None] = []

    def executor(intent: airlock.Intent) -> None:
        keys.append(current_outbox_id())
        outbox_support.backend_executor(intent) if intent.name == "backend_task" else intent.task(
            *intent.args, **intent.kwargs
        )

    relay(storage, executor).run(until_idle=True, handle_signals=False)
    assert keys == ids
    assert outbox_support.seen == [
        (1, ids[0]),  # the plain task declared airlock_outbox_id
        ("apply_async", (2,), {}, {"task_id": ids[1]}),  # a Celery-style task gets it as its task id
        ("apply_async", (3,), {}, {"task_id": "mine", "queue": "q"}),  # an explicit task_id wins
    ]
    assert current_outbox_id() is None


def test_poison_task_is_dead_lettered_and_others_unaffected(
    storage: SQLAlchemyStorage, caplog: pytest.LogCaptureFixture
) -> None:
    ids = store(storage, (record, 1), (poison, 2), (record, 3))
    r = relay(storage, max_attempts=3, backoff=10.0, backoff_cap=15.0)
    r.run(until_idle=True, handle_signals=False)
    assert outbox_support.seen == [(1, ""), (3, "")]
    st = states(storage)
    assert st[ids[0]][0] == st[ids[2]][0] == "done"
    assert st[ids[1]][:2] == ("pending", 1) and "poison 2 always fails" in (st[ids[1]][2] or "")
    assert storage.status().failed == 1 and storage.status().pending == 1
    # The retry waits out its backoff: 10s * jitter in [0.5, 1).
    with storage.engine.connect() as conn:
        due = conn.scalar(select(storage.table.c.available_at).where(storage.table.c.id == ids[1]))
    assert (
        dt.timedelta(seconds=4.5)
        < due - dt.datetime.now(dt.UTC).replace(tzinfo=None)
        < dt.timedelta(seconds=10)
    )
    assert r.run_once() == 0  # not due yet
    for attempt in (2, 3):
        make_due(storage)
        assert r.run_once() == 1
        assert states(storage)[ids[1]][:2] == (("pending", 2) if attempt == 2 else ("dead", 3))
    make_due(storage)
    assert r.run_once() == 0  # dead rows are never claimed again
    assert storage.status().dead == 1 and storage.status().done == 2
    assert r.stats.dead == 1 and r.stats.failed == 2
    assert any("dead after 3 attempt(s)" in m for m in caplog.messages)
    # Retried by hand: back to pending with fresh attempts.
    assert storage.retry([ids[1]]) == 1
    assert states(storage)[ids[1]][:2] == ("pending", 0)


def test_backoff_doubles_up_to_the_cap(storage: SQLAlchemyStorage) -> None:
    (row_id,) = store(storage, (poison, 1))
    r = relay(storage, max_attempts=10, backoff=2.0, backoff_cap=5.0)
    waits = []
    for _ in range(4):
        make_due(storage)
        before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        assert r.run_once() == 1
        with storage.engine.connect() as conn:
            due = conn.scalar(select(storage.table.c.available_at).where(storage.table.c.id == row_id))
        waits.append((due - before).total_seconds())
    # attempt n waits min(5, 2 * 2**(n-1)) scaled into [0.5, 1): 2, 4, 5, 5
    for wait, nominal in zip(waits, [2, 4, 5, 5], strict=True):
        assert nominal * 0.5 <= wait < nominal + 0.5


def test_ordering_key_serializes_rows_of_one_key(storage: SQLAlchemyStorage) -> None:
    key = {ORDERING_KEY_OPTION: "customer:1"}
    a1 = store(storage, (poison, 1), options=key)  # the head of the key fails...
    a2 = store(storage, (record, 2), options=key)
    b = store(storage, (record, 3), options={ORDERING_KEY_OPTION: "customer:2"})
    c = store(storage, (record, 4))
    r = relay(storage, max_attempts=2, backoff=30.0)
    r.run(until_idle=True, handle_signals=False)
    # ...so the next row of that key waits, while other keys and unkeyed rows go on.
    assert outbox_support.seen == [(3, ""), (4, "")]
    assert states(storage)[a2[0]][0] == "pending" and states(storage)[a2[0]][1] == 0
    assert states(storage)[b[0]][0] == states(storage)[c[0]][0] == "done"
    make_due(storage)
    r.run(until_idle=True, handle_signals=False)  # head is dead now: it no longer blocks its key
    assert states(storage)[a1[0]][0] == "dead"
    assert outbox_support.seen == [(3, ""), (4, ""), (2, "")]


def test_ordering_key_rows_go_one_per_claim_in_order(storage: SQLAlchemyStorage) -> None:
    key = {ORDERING_KEY_OPTION: "k"}
    for n in range(4):
        store(storage, (record, n), options=key)
    r = relay(storage, batch_size=10)
    claimed = [r.run_once() for _ in range(5)]
    assert claimed == [1, 1, 1, 1, 0]
    assert outbox_support.seen == [(0, ""), (1, ""), (2, ""), (3, "")]


def test_expired_lease_of_a_dead_relay_is_recovered(storage: SQLAlchemyStorage) -> None:
    ids = store(storage, (record, 1), (record, 2), (record, 3))
    # A relay claims two rows and dies without recording anything.
    _, claimed = storage.claim(2, lease=0.5)
    assert [c.id for c in claimed] == ids[:2]
    r = relay(storage)
    assert r.run_once() == 1  # only the unclaimed row while the lease holds
    assert outbox_support.seen == [(3, "")]
    assert storage.status().in_flight == 2
    time.sleep(0.6)
    assert r.run_once() == 2
    assert outbox_support.seen == [(3, ""), (1, ""), (2, "")]
    st = states(storage)
    assert all(st[i][0] == "done" for i in ids) and st[ids[0]][1] == 2  # the dead relay's claim counted


def test_late_finish_of_a_stale_claim_changes_nothing(storage: SQLAlchemyStorage) -> None:
    (row_id,) = store(storage, (record, 1))
    token, _ = storage.claim(10, lease=0.05)
    time.sleep(0.1)
    new_token, rows = storage.claim(10, lease=60)
    assert [r.id for r in rows] == [row_id]
    storage.finish(token, [row_id], [], [])  # the first relay wakes up late: its claim is gone
    assert states(storage)[row_id][0] == "inflight"
    storage.finish(new_token, [row_id], [], [])
    assert states(storage)[row_id][0] == "done"


def test_relay_on_an_engine_with_a_schema_translate_map(pg_storage: SQLAlchemyStorage) -> None:
    # The PostgreSQL claim and record are compiled once and run as driver SQL: the engine's
    # schema_translate_map must still apply. The table lives only in a schema of its own,
    # so an unapplied map would send the relay to a table that does not exist.
    from sqlalchemy import text

    schema = f"{pg_storage.table.name}_schema"
    with pg_storage.engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        engine = pg_storage.engine.execution_options(schema_translate_map={None: schema})
        translated = SQLAlchemyStorage(engine, f"{pg_storage.table.name}_t")
        translated.create_table()
        ids = store(translated, (record, 1), (record, 2))
        assert relay(translated).run_once() == 2
        assert outbox_support.seen == [(1, ""), (2, "")]
        assert {states(translated)[i][0] for i in ids} == {"done"}
    finally:
        with pg_storage.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def test_a_statement_compiled_once_takes_new_values_in_the_driver_paramstyle(tmp_path: Any) -> None:
    from sqlalchemy import bindparam, literal, select

    from airlock.outbox._storage import _Compiled, engine_from_url

    engine = engine_from_url(f"sqlite:///{tmp_path / 'c.db'}")  # qmark: positional parameters
    try:
        statement = select(
            bindparam("b", None, required=False), literal("fixed"), bindparam("a", None, required=False)
        )
        compiled = _Compiled(statement, engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql(compiled.sql, compiled.params(a=1, b=2)).one() == (2, "fixed", 1)
            assert conn.exec_driver_sql(compiled.sql, compiled.params(a="x", b="y")).one() == (
                "y",
                "fixed",
                "x",
            )
        with pytest.raises(KeyError, match="no parameter 'c'"):
            compiled.params(c=3)
    finally:
        engine.dispose()


def test_stop_finishes_the_batch_in_hand(storage: SQLAlchemyStorage) -> None:
    store(storage, *[(record, n) for n in range(6)])
    holder: list[Relay] = []

    def stopping_executor(intent: airlock.Intent) -> None:
        intent.task(*intent.args, **intent.kwargs)
        holder[0].stop()  # as SIGTERM would, in the middle of the first batch

    r = relay(storage, stopping_executor, batch_size=4)
    holder.append(r)
    r.run(handle_signals=False)
    assert [n for n, _ in outbox_support.seen] == [0, 1, 2, 3]
    assert storage.status().done == 4 and storage.status().pending == 2 and storage.status().in_flight == 0


def test_batch_past_its_lease_is_handed_back(storage: SQLAlchemyStorage) -> None:
    ids = store(storage, (record, 1), (record, 2))

    def slow(intent: airlock.Intent) -> None:
        intent.task(*intent.args, **intent.kwargs)
        time.sleep(0.85)

    r = relay(storage, slow, lease=1.0)  # publishing stops at 0.8 s: after the first row
    assert r.run_once() == 2
    st = states(storage)
    assert st[ids[0]][:2] == ("done", 1) and st[ids[1]][:2] == ("pending", 0)
    assert r.stats.released == 1


def test_unknown_task_reference_is_a_failure_not_a_crash(storage: SQLAlchemyStorage) -> None:
    (row_id,) = store(storage, (record, 1))
    with storage.engine.begin() as conn:
        conn.execute(update(storage.table).values(task="outbox_support:renamed_away"))
    relay(storage, max_attempts=1).run(until_idle=True, handle_signals=False)
    state, _, error = states(storage)[row_id]
    assert state == "dead" and "renamed_away" in (error or "")


def test_prune_removes_only_old_done_rows(storage: SQLAlchemyStorage) -> None:
    ids = store(storage, (record, 1), (record, 2), (poison, 3))
    relay(storage, max_attempts=1).run(until_idle=True, handle_signals=False)
    store(storage, (record, 4))
    with storage.engine.begin() as conn:
        old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=8)
        conn.execute(update(storage.table).where(storage.table.c.id == ids[0]).values(done_at=old))
    assert storage.prune(7 * 24 * 3600) == 1
    assert set(states(storage)) == set(ids[1:]) | (set(states(storage)) - set(ids))
    assert ids[0] not in states(storage) and len(states(storage)) == 3


def test_relay_prunes_on_its_schedule(storage: SQLAlchemyStorage) -> None:
    store(storage, (record, 1))
    r = relay(storage, retention=0.0, prune_every=0.0)
    r.run(until_idle=True, handle_signals=False)
    assert r.stats.pruned == 1 and states(storage) == {}


def test_async_task_is_awaited_by_the_relay(storage: SQLAlchemyStorage) -> None:
    ids: list[str] = []

    async def main() -> None:
        from outbox_support_async import arecord

        with Session(storage.engine) as session:
            async with airlock.scope(_cls=OutboxScope, session=session, table=storage.table) as scope:
                airlock.enqueue(arecord, 5)
            session.commit()
        ids.extend(scope.stored_ids)  # type: ignore[attr-defined]

    import asyncio

    asyncio.run(main())
    relay(storage).run(until_idle=True, handle_signals=False)
    assert outbox_support.seen == [("async", 5)] and states(storage)[ids[0]][0] == "done"


def test_relay_rejects_bad_settings(storage: SQLAlchemyStorage) -> None:
    with pytest.raises(ValueError, match=r"batch_size=\.\.\.\) must be a positive integer, got 0"):
        Relay(storage, batch_size=0)
    with pytest.raises(ValueError, match=r"lease=\.\.\.\) must be positive"):
        Relay(storage, lease=0)
    with pytest.raises(TypeError, match=r"executor=\.\.\.\) needs a callable"):
        Relay(storage, executor="celery")  # type: ignore[arg-type]


def test_cli_init_status_prune_retry(db_url: str, capsys: pytest.CaptureFixture[str], caplog: Any) -> None:
    import uuid

    name = f"airlock_outbox_{uuid.uuid4().hex[:10]}"
    storage = SQLAlchemyStorage.from_url(db_url, name)
    try:
        assert cli(["init", "--url", db_url, "--table", name]) == 0
        assert f"outbox table {name!r} ready" in capsys.readouterr().out
        ids = store(storage, (record, 1), (poison, 2))
        assert cli(["status", "--url", db_url, "--table", name, "--json"]) == 0
        counts = json.loads(capsys.readouterr().out)
        assert counts["pending"] == 2 and counts["done"] == 0 and counts["oldest_age"] >= 0
        caplog.set_level(logging.INFO, "airlock.outbox")
        argv = ["relay", "--url", db_url, "--table", name, "--until-idle", "--max-attempts", "1"]
        assert cli([*argv, "--executor", "airlock.integrations.executors.sync:sync_executor"]) == 0
        assert cli(["status", "--url", db_url, "--table", name]) == 0
        text = capsys.readouterr().out
        assert "      done: 1" in text and "      dead: 1" in text and "oldest_age: -" in text
        assert cli(["retry", "--url", db_url, "--table", name, ids[1]]) == 0
        assert "1 row(s) back to pending" in capsys.readouterr().out
        assert cli(["prune", "--url", db_url, "--table", name, "--older-than", "0"]) == 0
        assert "pruned 1 done/dead row(s)" in capsys.readouterr().out
        assert set(states(storage)) == {ids[1]}
        with pytest.raises(SystemExit):
            cli(["relay", "--url", db_url, "--executor", "no.such:executor"])
        assert "cannot import 'no.such:executor'" in capsys.readouterr().err
    finally:
        storage.drop_table()
        storage.close()


class RecordingStorage:
    """The real storage, with its claims and idle waits recorded."""

    def __init__(self, inner: SQLAlchemyStorage, stop_after_waits: int = 0) -> None:
        self.inner = inner
        self.claims = 0
        self.waits: list[float] = []
        self.stop_after_waits = stop_after_waits
        self.relay: Relay | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def claim(self, limit: int, lease: float) -> Any:
        self.claims += 1
        return self.inner.claim(limit, lease)

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        woken = self.inner.wait(timeout)
        if self.stop_after_waits and len(self.waits) >= self.stop_after_waits and self.relay is not None:
            self.relay.stop()
        return woken


def test_idle_relay_backs_off_its_polling(storage: SQLAlchemyStorage) -> None:
    recording = RecordingStorage(storage, stop_after_waits=6)
    r = Relay(recording, idle_min=0.05, idle_max=0.4)  # type: ignore[arg-type]
    recording.relay = r
    r.run(handle_signals=False)
    # The first wait (0) only starts listening; then each empty claim doubles the wait, up to the cap.
    assert recording.waits[0] == 0
    assert recording.waits[1:] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.4], rel=0.25)
    assert recording.claims == 5


def test_notify_wakes_an_idle_relay_at_once(pg_storage: SQLAlchemyStorage) -> None:
    import threading

    from test_outbox_processes import wait_for

    recording = RecordingStorage(pg_storage)
    r = Relay(recording, idle_min=60.0, idle_max=60.0)  # type: ignore[arg-type]  # polling alone: a minute
    thread = threading.Thread(target=r.run, kwargs={"handle_signals": False})
    thread.start()
    try:
        wait_for(lambda: recording.claims >= 1, "the first (empty) claim")
        store(pg_storage, (record, 1))
        wait_for(lambda: bool(outbox_support.seen), "the relay to wake up", timeout=30)
    finally:
        r.stop()
        thread.join(timeout=10)
    assert outbox_support.seen == [(1, "")] and r.stats.notified == 1


def test_dead_rows_are_pruned_after_their_own_retention(storage: SQLAlchemyStorage) -> None:
    ids = store(storage, (record, 1), (poison, 2), (poison, 3))
    relay(storage, max_attempts=1).run(until_idle=True, handle_signals=False)
    assert storage.status().dead == 2
    with storage.engine.begin() as conn:
        old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=31)
        conn.execute(update(storage.table).where(storage.table.c.id == ids[1]).values(done_at=old))
    assert storage.prune(None) == 0  # dead rows are kept unless asked
    assert storage.prune(None, dead_older_than=30 * 24 * 3600) == 1
    assert set(states(storage)) == {ids[0], ids[2]}
    # The relay prunes them on its schedule when given a dead retention; a retried row is not dead any more.
    assert storage.retry([ids[2]]) == 1
    r = relay(storage, max_attempts=1, retention=None, dead_retention=0.0, prune_every=0.0)
    r.run(until_idle=True, handle_signals=False)
    assert set(states(storage)) == {ids[0]} and r.stats.pruned == 1


def test_pruning_drops_ordering_keys_with_nothing_left_to_order(storage: SQLAlchemyStorage) -> None:
    from sqlalchemy import func

    store(storage, (record, 1), options={ORDERING_KEY_OPTION: "a"})
    store(storage, (record, 2), options={ORDERING_KEY_OPTION: "b"})
    _, claimed = storage.claim(1, lease=60)  # "a" stays in flight
    relay(storage).run_once()
    with storage.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(storage.keys)) == 2
    assert storage.prune(0) == 1  # b's row, done
    with storage.engine.connect() as conn:
        assert list(conn.scalars(select(storage.keys.c.ordering_key))) == ["a"]
    assert [c.ordering_key for c in claimed] == ["a"]


def test_cli_names_the_package_of_a_missing_driver(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    for module in ("MySQLdb", "pymysql"):
        monkeypatch.setitem(sys.modules, module, None)  # as if neither were installed
    with pytest.raises(SystemExit) as exit_:
        cli(["status", "--url", "mysql://root@127.0.0.1/db"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert (
        'no database driver for mysql:// URLs is installed: pip install "PyMySQL" or pip install "mysqlclient"'
        in err
    )
    with pytest.raises(SystemExit):
        cli(["relay", "--url", "postgresql+pg8000://u@127.0.0.1/db"])
    assert 'needs the pg8000 driver, which is not installed: pip install "pg8000"' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["status", "--url", "nonsense://x"])
    assert "--url 'nonsense://x'" in capsys.readouterr().err
