"""The relay survives what production throws at it (SPEC §5.6): tasks raising BaseExceptions, a task
that kills its relay (no crash loop), a database that goes away and comes back (no exit)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import outbox_support
import pytest
from outbox_helpers import TcpProxy
from outbox_support import cancelled, exits, interrupts, kill_own_process, record
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_outbox_processes import fill, read_log, relays, wait_for

import airlock
from airlock.outbox import OutboxScope, Relay, SQLAlchemyStorage


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    outbox_support.seen.clear()


def store(storage: SQLAlchemyStorage, *calls: tuple[Any, ...]) -> list[str]:
    with Session(storage.engine) as session, session.begin():
        with airlock.scope(_cls=OutboxScope, session=session, table=storage.table) as scope:
            for task, *args in calls:
                airlock.enqueue(task, *args)
    return scope.stored_ids  # type: ignore[attr-defined, no-any-return]


def rows(storage: SQLAlchemyStorage) -> dict[str, tuple[str, int, str | None]]:
    t = storage.table
    with storage.engine.connect() as conn:
        return {r.id: (r.state, r.attempts, r.last_error) for r in conn.execute(select(t))}


def test_base_exceptions_from_tasks_are_failed_attempts(storage: SQLAlchemyStorage) -> None:
    from outbox_support_async import acancelled

    ids = store(
        storage, (record, 1), (exits, 2), (interrupts, 3), (cancelled, 4), (acancelled, 5), (record, 6)
    )
    relay = Relay(storage, max_attempts=1, idle_max=0.05)
    relay.run(until_idle=True, handle_signals=False)  # returns: none of them ended the relay
    state = rows(storage)
    assert outbox_support.seen == [(1, ""), (6, "")]
    assert state[ids[0]][0] == state[ids[5]][0] == "done"
    errors = {ids[1]: "SystemExit: 2", ids[2]: "KeyboardInterrupt: interrupted 3",
              ids[3]: "CancelledError: cancelled 4", ids[4]: "CancelledError: cancelled 5"}  # fmt: skip
    for row_id, error in errors.items():
        assert state[row_id][:2] == ("dead", 1) and error in (state[row_id][2] or "")
    assert relay.stats.dead == 4 and relay.stats.dispatched == 2


def test_task_that_kills_its_relay_is_dead_lettered_after_max_attempts(
    storage: SQLAlchemyStorage, db_url: str, tmp_path: Path
) -> None:
    ids = store(storage, (record, 1), (kill_own_process, 2), (record, 3))
    deaths = 0
    with relays(storage, db_url, tmp_path) as group:
        # A supervisor restarting the relay whenever it dies, as systemd or Kubernetes would.
        for _ in range(6):
            proc = group.start(
                "--until-idle", "--batch-size", "1", "--lease", "0.5", "--max-attempts", "2",
                "--executor", "airlock.integrations.executors.sync:sync_executor",
            )  # fmt: skip
            code = proc.wait(timeout=60)
            if code == 0 and rows(storage)[ids[1]][0] == "dead" and rows(storage)[ids[2]][0] == "done":
                break
            if code == -signal.SIGKILL:
                deaths += 1
                time.sleep(0.6)  # its lease expires
        else:
            pytest.fail(f"no relay got past the poison row: {rows(storage)}")
    assert deaths == 2  # max_attempts, then never sent again: no crash loop
    state = rows(storage)
    assert state[ids[1]][0] == "dead" and "relay died while sending it on attempt 2 of 2" in (
        state[ids[1]][2] or ""
    )
    assert state[ids[0]][0] == state[ids[2]][0] == "done"


# -- the database goes away and comes back -------------------------------------------------------


@pytest.fixture(params=["postgres", "mysql"])
def server_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def server_storage(server_url: str) -> Any:
    from outbox_helpers import fresh_storage

    with fresh_storage(server_url) as storage:
        yield storage


def proxy_for(url: str) -> TcpProxy:
    parts = urlsplit(url)
    default = 5432 if parts.scheme.startswith("postgres") else 3306
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or default))
    proxy.up()
    return proxy


def test_relay_rides_out_a_database_outage(
    server_storage: SQLAlchemyStorage, server_url: str, tmp_path: Path
) -> None:
    storage = server_storage
    proxy = proxy_for(server_url)
    try:
        with relays(storage, proxy.url(server_url), tmp_path) as group:
            proc = group.start("--batch-size", "20", "--idle-max", "0.2")
            group.wait_started(proc)
            first = fill(storage, 50)  # the application reaches the database directly
            wait_for(lambda: storage.status().done == 50, "the first rows")
            proxy.down()  # every relay connection cut; new ones refused
            second = fill(storage, 50)
            wait_for(lambda: "relay cycle failed" in group.stderr(proc), "the relay to notice", timeout=30)
            time.sleep(1.0)  # a few retries with backoff...
            assert proc.poll() is None, group.stderr(proc)  # ...and the process is still there
            assert storage.status().done == 50
            proxy.up()  # the database is back
            wait_for(lambda: storage.status().done == 100, "the rows committed during the outage", timeout=60)
            assert group.stop_all() == [0]
    finally:
        proxy.down()
    dispatched = [row_id for row_id, _ in read_log(group.log)]
    assert set(dispatched) == set(first + second)


def test_django_relay_rides_out_a_database_outage(django_db_url: str, tmp_path: Path) -> None:
    from django_outbox_procs import FILL, run, start_relay, states, stop_all

    proxy = proxy_for(django_db_url)
    try:
        relay = start_relay(proxy.url(django_db_url), tmp_path, 0, "--batch-size", "20")
        try:
            first = run(django_db_url, "-c", FILL, "40").split()
            wait_for(lambda: states(django_db_url)["done"] == 40, "the first rows")
            proxy.down()
            second = run(django_db_url, "-c", FILL, "40").split()
            err = tmp_path / "relay0.err"
            wait_for(lambda: "relay cycle failed" in err.read_text(), "the relay to notice", timeout=30)
            time.sleep(1.0)
            assert relay.poll() is None, err.read_text()
            proxy.up()
            wait_for(
                lambda: states(django_db_url)["done"] == 80,
                "the rows committed during the outage",
                timeout=60,
            )
        finally:
            codes = stop_all([relay])
        assert codes == [0]
    finally:
        proxy.down()
    assert {row_id for row_id, _ in read_log(tmp_path / "dispatched.log")} == set(first + second)
