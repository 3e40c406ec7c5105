"""Django outbox processes for the multi-process tests: ``manage.py migrate``/``airlock_relay`` and
an application filling the outbox, each a real subprocess on the given PostgreSQL or MariaDB database."""

from __future__ import annotations

import collections
import signal
import subprocess
from pathlib import Path

from outbox_helpers import HERE, PYTHON, subprocess_env
from sqlalchemy import inspect, text

from airlock.outbox import engine_from_url

DEADLINE = 90.0

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


def env_for(url: str, **extra: str) -> dict[str, str]:
    return subprocess_env(
        AIRLOCK_OUTBOX_DJANGO_URL=url, DJANGO_SETTINGS_MODULE="outbox_django_proc_settings", **extra
    )


def run(url: str, *args: str) -> str:
    done = subprocess.run([PYTHON, *args], env=env_for(url), cwd=HERE, capture_output=True, timeout=DEADLINE)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def drop_outbox_tables(url: str) -> None:
    """Remove what ``migrate`` made of the outbox app (its tables and its migration records)."""
    engine = engine_from_url(url)
    try:
        with engine.begin() as conn:
            for table in ("airlock_outbox_keys", "airlock_outbox"):
                conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
            if inspect(conn).has_table("django_migrations"):
                conn.execute(text("DELETE FROM django_migrations WHERE app = 'airlock_outbox'"))
    finally:
        engine.dispose()


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
