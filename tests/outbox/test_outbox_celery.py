"""Through Celery on Redis: a real worker end to end, and a broker that is really down, then back.

The broker and the workers' record share the Redis database of $AIRLOCK_TEST_REDIS_URL, under keys
named after the queue (``airlock-outbox-<random>``); nothing else in it is touched.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from outbox_helpers import HERE, PYTHON, TcpProxy, subprocess_env
from sqlalchemy.orm import Session
from test_outbox_processes import wait_for

import airlock
from airlock.outbox import OutboxScope, SQLAlchemyStorage


@pytest.fixture
def celery_env(redis_url: str) -> Iterator[dict[str, str]]:
    queue = f"airlock-outbox-{uuid.uuid4().hex[:8]}"
    env = {
        "AIRLOCK_OUTBOX_BROKER": redis_url,
        "AIRLOCK_OUTBOX_RESULTS": redis_url,
        "AIRLOCK_OUTBOX_QUEUE": queue,
    }
    yield env
    redis.Redis.from_url(env["AIRLOCK_OUTBOX_BROKER"]).delete(queue)
    redis.Redis.from_url(env["AIRLOCK_OUTBOX_RESULTS"]).delete(f"{queue}:results")


def enqueue_tasks(storage: SQLAlchemyStorage, n: int) -> list[str]:
    from outbox_celery_app import record_task  # the module reads the broker URL lazily (publish time)

    with Session(storage.engine) as session, session.begin():
        with airlock.scope(_cls=OutboxScope, session=session, table=storage.table) as scope:
            for i in range(n):
                airlock.enqueue(record_task, i, label=f"row {i}")
    return scope.stored_ids  # type: ignore[attr-defined, no-any-return]


def start_relay(storage: SQLAlchemyStorage, url: str, env: dict[str, str], log: Path, *extra: str) -> Any:
    cmd = [
        PYTHON, "-m", "airlock.outbox", "relay", "--url", url, "--table", storage.table.name,
        "--executor", "outbox_support:celery_executor", "--idle-max", "0.1", *extra,
    ]  # fmt: skip
    with open(log, "wb") as err:
        return subprocess.Popen(cmd, env=subprocess_env(**env), stderr=err, cwd=HERE)


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


@pytest.fixture
def worker(celery_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    cmd = [
        PYTHON, "-m", "celery", "-A", "outbox_celery_app", "worker", "-Q", celery_env["AIRLOCK_OUTBOX_QUEUE"],
        "-P", "solo", "--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "INFO",
        "-n", f"{celery_env['AIRLOCK_OUTBOX_QUEUE']}@%h",
    ]  # fmt: skip
    with open(tmp_path / "worker.err", "wb") as err:
        proc = subprocess.Popen(cmd, env=subprocess_env(**celery_env), stderr=err, stdout=err, cwd=HERE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_end_to_end_through_celery_on_redis(
    pg_storage: SQLAlchemyStorage, postgres_url: str, celery_env: dict[str, str], worker: Any, tmp_path: Path
) -> None:
    storage = pg_storage
    ids = enqueue_tasks(storage, 20)
    with pytest.raises(KeyError):  # rolled back: must never reach the worker
        with Session(storage.engine) as session, session.begin():
            with airlock.scope(_cls=OutboxScope, session=session, table=storage.table):
                from outbox_celery_app import record_task

                airlock.enqueue(record_task, 999)
            raise KeyError
    relay = start_relay(storage, postgres_url, celery_env, tmp_path / "relay.err")
    try:
        results = redis.Redis.from_url(celery_env["AIRLOCK_OUTBOX_RESULTS"])
        key = f"{celery_env['AIRLOCK_OUTBOX_QUEUE']}:results"
        wait_for(lambda: results.hlen(key) >= 20, "the worker to run every task")
        assert stop(relay) == 0
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
    recorded = {k.decode(): json.loads(v) for k, v in results.hgetall(key).items()}
    # Each task ran under its outbox row id as Celery task id: the consumer's idempotency key.
    assert recorded == {row_id: [i, f"row {i}"] for i, row_id in enumerate(ids)}
    assert storage.status().done == 20 and storage.status().pending == 0


def test_broker_down_rows_stay_pending_and_go_out_once_it_is_back(
    storage: SQLAlchemyStorage, db_url: str, redis_url: str, celery_env: dict[str, str], tmp_path: Path
) -> None:
    parts = urlsplit(redis_url)
    broker = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    env = {**celery_env, "AIRLOCK_OUTBOX_BROKER": broker.url(redis_url)}
    ids = enqueue_tasks(storage, 5)
    relay = start_relay(
        storage, db_url, env, tmp_path / "relay.err", "--max-attempts", "1000", "--backoff", "0.05",
        "--backoff-cap", "0.2",
    )  # fmt: skip
    try:
        # Broker down: every publish is refused; rows are retried, never lost, never dead.
        wait_for(lambda: storage.status().failed == 5, "every row to fail once")
        from test_outbox_relay import states

        wait_for(lambda: min(a for _, a, _ in states(storage).values()) >= 3, "a few retries")
        status = storage.status()
        assert (status.done, status.dead, status.pending + status.in_flight) == (0, 0, 5)
        assert all("Connection refused" in (e or "") for _, _, e in states(storage).values())
        broker_db = redis.Redis.from_url(celery_env["AIRLOCK_OUTBOX_BROKER"])
        queue = celery_env["AIRLOCK_OUTBOX_QUEUE"]
        assert broker_db.llen(queue) == 0
        broker.up()  # the same relay, still running, gets through now
        wait_for(lambda: storage.status().done == 5, "the rows to go out")
        assert stop(relay) == 0
    finally:
        broker.down()
        if relay.poll() is None:
            relay.kill()
            relay.wait()
    messages = [json.loads(m) for m in broker_db.lrange(queue, 0, -1)]
    assert sorted(m["headers"]["id"] for m in messages) == sorted(ids)
    bodies = {m["headers"]["id"]: json.loads(base64.b64decode(m["body"]))[:2] for m in messages}
    assert bodies == {row_id: [[i], {"label": f"row {i}"}] for i, row_id in enumerate(ids)}
    assert all(m["headers"]["task"] == "outbox_celery_app.record_task" for m in messages)
