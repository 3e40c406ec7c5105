"""Outbox benchmark: relay throughput, the relay's own cost per row, and the cost of an outbox flush.

Run: ``.venv/bin/python bench/outbox.py`` (needs the PostgreSQL and Redis of SERVICES.md; URLs
from AIRLOCK_TEST_POSTGRES_URL / AIRLOCK_TEST_REDIS_URL; Redis keys are named per run and deleted).
Prints, side by side in one run:

- rows/s of 1 and 4 relay processes (``python -m airlock.outbox relay``, batch 200) draining ROWS
  committed rows, each a task doing one Redis ``RPUSH`` (sync executor): from the commit of the
  rows to the ``done_at`` the relays recorded for the last of them (the benchmark polls every
  0.1 s with one index probe, and its polling does not enter the figure);
- the same through Celery on Redis (celery executor; no worker: the relay's job ends at the broker);
- the relay's own cost per row: one in-process relay, a no-op executor, ROWS rows (claiming and
  recording included);
- the median time of a transaction that writes one business row and runs a scope that enqueues
  10 intents and flushes, for an in-memory scope (``Scope``, sync executor, no-op task; for Django
  ``DjangoScope`` when available) and for the outbox scope, and the difference (commit included).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import airlock  # noqa: E402
from airlock.outbox import OutboxScope, SQLAlchemyStorage  # noqa: E402
from airlock.outbox._model import utcnow  # noqa: E402

POSTGRES = os.environ.get("AIRLOCK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("AIRLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROWS = int(os.environ.get("AIRLOCK_OUTBOX_BENCH_ROWS", "10000"))
FLUSHES = int(os.environ.get("AIRLOCK_OUTBOX_BENCH_FLUSHES", "300"))


def _fill(storage: SQLAlchemyStorage, n: int, task_name: str) -> None:
    import outbox_bench_app
    from sqlalchemy.orm import Session

    task = getattr(outbox_bench_app, task_name)
    with Session(storage.engine) as session, session.begin():
        with airlock.scope(_cls=OutboxScope, session=session, table=storage.table):
            for i in range(n):
                airlock.enqueue(task, i)


def _drained(storage: SQLAlchemyStorage) -> bool:
    """Whether no row is left to relay (one index probe: the polling must not load the database)."""
    from sqlalchemy import select

    t = storage.table
    with storage.engine.connect() as conn:
        return conn.scalar(select(t.c.seq).where(t.c.state.in_(("pending", "inflight"))).limit(1)) is None


def _finished_at(storage: SQLAlchemyStorage) -> tuple[int, Any]:
    """How many rows are done, and when the last of them was recorded done (the relays' clock: UTC)."""
    from sqlalchemy import func, select

    t = storage.table
    with storage.engine.connect() as conn:
        count, last = conn.execute(
            select(func.count(), func.max(t.c.done_at)).where(t.c.state == "done")
        ).one()
    return int(count), last


def _bench_env() -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    env["AIRLOCK_OUTBOX_BENCH_REDIS"] = REDIS
    env["AIRLOCK_OUTBOX_BENCH_QUEUE"] = f"airlock-outbox-bench-{run}"
    env["AIRLOCK_OUTBOX_BENCH_LIST"] = f"airlock-outbox-bench-list-{run}"
    os.environ.update({k: v for k, v in env.items() if k.startswith("AIRLOCK_OUTBOX_BENCH_")})
    return env


def relay_throughput(n_relays: int, executor: str, task_name: str) -> float:
    """Rows per second for ``n_relays`` relay processes draining ROWS rows of ``task_name``."""
    import redis

    env = _bench_env()
    storage = SQLAlchemyStorage.from_url(POSTGRES, f"airlock_outbox_bench_{uuid.uuid4().hex[:8]}")
    storage.create_table()
    logs = Path(tempfile.mkdtemp())
    procs = []
    try:
        for i in range(n_relays):
            with open(logs / f"{i}.err", "wb") as err:
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "airlock.outbox",
                            "relay",
                            "--url",
                            POSTGRES,
                            "--table",
                            storage.table.name,
                            "--executor",
                            executor,
                            "--idle-max",
                            "0.1",
                            "--batch-size",
                            "200",
                        ],
                        env=env,
                        stderr=err,
                        cwd=HERE,
                    )  # fmt: skip
                )
        for i, proc in enumerate(procs):
            while "relay started" not in (logs / f"{i}.err").read_text():
                if proc.poll() is not None:
                    raise RuntimeError((logs / f"{i}.err").read_text())
                time.sleep(0.05)
        _fill(storage, ROWS, task_name)
        start = utcnow()  # the rows are committed: the relays may start
        while not _drained(storage):
            time.sleep(0.1)
        # Timed by the database, not by this loop: the end is when the relays recorded the
        # last row done, so neither the polling's load nor its period enters the figure.
        done, last = _finished_at(storage)
        if done != ROWS:
            raise RuntimeError(f"{ROWS - done} of {ROWS} rows were not relayed")
        return ROWS / (last - start).total_seconds()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
        storage.drop_table()
        storage.close()
        client = redis.Redis.from_url(REDIS)
        client.delete(env["AIRLOCK_OUTBOX_BENCH_QUEUE"], env["AIRLOCK_OUTBOX_BENCH_LIST"])


def relay_cost_per_row() -> float:
    """Microseconds per row of one in-process relay with a no-op executor (PostgreSQL, batch 200)."""
    from outbox_bench_app import noop_executor

    from airlock.outbox import Relay

    storage = SQLAlchemyStorage.from_url(POSTGRES, f"airlock_outbox_bench_{uuid.uuid4().hex[:8]}")
    storage.create_table()
    try:
        _fill(storage, ROWS, "noop")
        relay = Relay(storage, noop_executor, batch_size=200, retention=None)
        relay.run_once()  # warm: connections, task import
        start = time.perf_counter()
        relay.run(until_idle=True, handle_signals=False)
        elapsed = time.perf_counter() - start
        return elapsed / (relay.stats.dispatched - 200) * 1e6
    finally:
        storage.drop_table()
        storage.close()


def _paired_median_ms(first: Any, second: Any, n: int) -> tuple[float, float]:
    """Median ms of each, run alternately: on a shared machine, drifting load hits both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(n):
        for run, into in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            run()
            into.append(time.perf_counter() - start)
    return statistics.median(times[0]) * 1000, statistics.median(times[1]) * 1000


def _median_ms(run: object, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def flush_cost_sqlalchemy(url: str) -> tuple[float, float]:
    """Median ms: in-memory Scope vs OutboxScope, 10 intents, in a Session transaction that writes one business row."""
    from outbox_bench_app import noop
    from sqlalchemy import Column, Integer, MetaData, Table, insert
    from sqlalchemy.orm import Session

    storage = SQLAlchemyStorage.from_url(url, f"airlock_outbox_bench_{uuid.uuid4().hex[:8]}")
    storage.create_table()
    orders = Table(f"{storage.table.name}_orders", MetaData(), Column("id", Integer, primary_key=True))
    orders.create(storage.engine)
    try:

        def plain() -> None:
            with Session(storage.engine) as session, session.begin():
                session.execute(insert(orders))
                with airlock.scope():
                    for i in range(10):
                        airlock.enqueue(noop, i)

        def outbox() -> None:
            with Session(storage.engine) as session, session.begin():
                session.execute(insert(orders))
                with airlock.scope(_cls=OutboxScope, session=session, table=storage.table):
                    for i in range(10):
                        airlock.enqueue(noop, i)

        for warm in (plain, outbox):
            warm()
        return _paired_median_ms(plain, outbox, FLUSHES)
    finally:
        orders.drop(storage.engine)
        storage.drop_table()
        storage.close()


def flush_cost_django() -> tuple[str, float, float]:
    """Median ms: DjangoScope (or Scope) vs DjangoOutboxScope, 10 intents, in atomic(), SQLite in memory."""
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        INSTALLED_APPS=["airlock.outbox.django"],
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from outbox_bench_app import noop

    from airlock.outbox.django import DjangoOutboxScope

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_orders (id INTEGER PRIMARY KEY AUTOINCREMENT)")
    try:
        from airlock.integrations.django import DjangoScope

        baseline: type[airlock.Scope] = DjangoScope
    except ImportError:
        baseline = airlock.Scope

    def run(cls: type[airlock.Scope]) -> None:
        with transaction.atomic(), airlock.scope(_cls=cls):
            with connection.cursor() as cursor:  # the business write
                cursor.execute("INSERT INTO bench_orders DEFAULT VALUES")
            for i in range(10):
                airlock.enqueue(noop, i)

    run(baseline)
    run(DjangoOutboxScope)
    plain, outbox = _paired_median_ms(lambda: run(baseline), lambda: run(DjangoOutboxScope), FLUSHES)
    return baseline.__name__, plain, outbox


def main() -> None:
    print(f"outbox relay throughput, PostgreSQL -> task doing one Redis RPUSH ({ROWS} rows, batch 200):")
    for n in (1, 4):
        print(
            f"  {n} relay(s): {relay_throughput(n, 'airlock.integrations.executors.sync:sync_executor', 'rpush_task'):8.0f} rows/s"
        )
    print(
        f"outbox relay throughput, PostgreSQL -> Celery on Redis ({ROWS} rows, batch 200, one producer per batch):"
    )
    for n in (1, 4):
        print(
            f"  {n} relay(s): {relay_throughput(n, 'outbox_bench_app:celery_executor', 'noop_task'):8.0f} rows/s"
        )
    print(
        f"outbox relay's own cost per row, no-op executor, PostgreSQL, batch 200: {relay_cost_per_row():6.1f} us"
    )
    print(f"outbox flush cost, 10 intents, median of {FLUSHES} (transaction and commit included):")
    for label, url in (("PostgreSQL", POSTGRES), ("SQLite file", f"sqlite:///{tempfile.mkdtemp()}/bench.db")):
        plain, outbox = flush_cost_sqlalchemy(url)
        print(
            f"  SQLAlchemy {label:<11}: Scope {plain:6.3f} ms, OutboxScope {outbox:6.3f} ms, "
            f"added {outbox - plain:6.3f} ms"
        )
    name, plain, outbox = flush_cost_django()
    print(
        f"  Django SQLite memory   : {name} {plain:6.3f} ms, DjangoOutboxScope {outbox:6.3f} ms, "
        f"added {outbox - plain:6.3f} ms"
    )


if __name__ == "__main__":
    main()
