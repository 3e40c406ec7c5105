"""The Django storage under real concurrency: relay processes (``manage.py airlock_relay``) on
PostgreSQL and MariaDB, each in a database of its own (``airlock_outbox_dj_<random>``)."""

from __future__ import annotations

import collections
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from airlock.outbox import engine_from_url
from outbox_helpers import HERE, PYTHON, subprocess_env
from test_outbox_processes import DEADLINE, read_log, wait_for

FILL = """
import django
django.setup()
from django.db import transaction
import airlock
from airlock.outbox.django import DjangoOutboxScope
from outbox_support import record
import sys
with transaction.atomic(), airlock.scope(_cls=DjangoOutboxScope) as scope:
    for i in range(int(sys.argv[1])):
        airlock.enqueue(record, i)
print(" ".join(scope.stored_ids))
"""


@pytest.fixture(params=["postgres", "mysql"])
def django_db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    server: str = request.getfixturevalue(f"{request.param}_url")
    name = f"airlock_outbox_dj_{uuid.uuid4().hex[:8]}"
    admin = engine_from_url(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            force = " WITH (FORCE)" if admin.dialect.name == "postgresql" else ""
            conn.execute(text(f"DROP DATABASE {name}{force}"))
        admin.dispose()


def env_for(url: str, **extra: str) -> dict[str, str]:
    return subprocess_env(
        AIRLOCK_OUTBOX_DJANGO_URL=url, DJANGO_SETTINGS_MODULE="outbox_django_proc_settings", **extra
    )


def run(url: str, *args: str) -> str:
    done = subprocess.run(
        [PYTHON, *args], env=env_for(url), cwd=HERE, capture_output=True, timeout=DEADLINE
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def states(url: str) -> collections.Counter[str]:
    engine = engine_from_url(url)
    try:
        with engine.connect() as conn:
            query = text("SELECT state, count(*) FROM airlock_outbox GROUP BY state")
            return collections.Counter(dict(conn.execute(query).all()))
    finally:
        engine.dispose()


def start_relay(url: str, tmp_path: Path, n: int, *extra: str, **env: str) -> subprocess.Popen[bytes]:
    with open(tmp_path / f"relay{n}.err", "wb") as err:
        return subprocess.Popen(
            [PYTHON, "-m", "django", "airlock_relay", "--executor", "outbox_support.log_executor",
             "--idle-max", "0.2", *extra],
            env=env_for(url, AIRLOCK_OUTBOX_LOG=str(tmp_path / "dispatched.log"), **env),
            cwd=HERE, stderr=err, stdout=err,
        )  # fmt: skip


def stop_all(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=30))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes


def test_two_django_relays_share_the_work_exactly_once(django_db_url: str, tmp_path: Path) -> None:
    run(django_db_url, "-m", "django", "migrate", "-v", "0")
    procs = [start_relay(django_db_url, tmp_path, n) for n in range(2)]
    try:
        ids = run(django_db_url, "-c", FILL, "3000").split()
        wait_for(lambda: states(django_db_url)["done"] == 3000, "all rows done")
    finally:
        codes = stop_all(procs)
    assert codes == [0, 0]
    log = read_log(tmp_path / "dispatched.log")
    per_id = collections.Counter(row_id for row_id, _ in log)
    assert set(per_id) == set(ids) and max(per_id.values()) == 1
    assert len({pid for _, pid in log}) == 2


def test_kill_9_of_a_django_relay_mid_batch_loses_nothing(django_db_url: str, tmp_path: Path) -> None:
    run(django_db_url, "-m", "django", "migrate", "-v", "0")
    ids = run(django_db_url, "-c", FILL, "120").split()
    marker = tmp_path / "hung"
    victim = start_relay(
        django_db_url, tmp_path, 0, "--batch-size", "50", "--lease", "2",
        AIRLOCK_OUTBOX_HANG_AFTER="70", AIRLOCK_OUTBOX_HANG_MARKER=str(marker),
    )  # fmt: skip
    procs = [victim]
    try:
        wait_for(marker.exists, "the relay to hang mid-batch")
        victim.kill()
        victim.wait()
        published = [row_id for row_id, pid in read_log(tmp_path / "dispatched.log") if pid == victim.pid]
        assert len(published) == 70 and states(django_db_url) == {"done": 50, "inflight": 50, "pending": 20}
        procs.append(start_relay(django_db_url, tmp_path, 1, "--batch-size", "50", "--lease", "2"))
        wait_for(lambda: states(django_db_url)["done"] == 120, "the restarted relay to finish")
    finally:
        stop_all(procs)
    per_id = collections.Counter(row_id for row_id, _ in read_log(tmp_path / "dispatched.log"))
    assert set(per_id) == set(ids)
    assert {row_id for row_id, n in per_id.items() if n > 1} == set(published[50:])
