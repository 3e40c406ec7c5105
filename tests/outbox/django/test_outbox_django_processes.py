"""The Django storage under real concurrency: relay processes (``manage.py airlock_relay``) on
PostgreSQL and MariaDB (the ``django_db_url`` fixture: the outbox app migrated into the test database)."""

from __future__ import annotations

import collections
from pathlib import Path

from django_outbox_procs import FILL, run, start_relay, states, stop_all
from test_outbox_processes import read_log, wait_for


def test_two_django_relays_share_the_work_exactly_once(django_db_url: str, tmp_path: Path) -> None:
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


WRITER = """
import sys, time, pathlib
import django
django.setup()
from django.db import connection, transaction
import airlock
from airlock.outbox.django import DjangoOutboxScope
from airlock.outbox.django.models import OutboxKey
from outbox_support import record
label, inserted, go = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
with transaction.atomic():
    inserted.with_suffix(".ready").touch()  # set up, about to insert
    with airlock.scope(_cls=DjangoOutboxScope):
        airlock.enqueue(record, 0, label=label, _dispatch_options={"outbox_ordering_key": "customer:1"})
    inserted.touch()  # the row is inserted (and, with the key lock, the key is held)
    with connection.cursor() as cursor:
        # How many transactions have taken the key, this one included. It holds the key's
        # lock until it commits, so this is its place in commit order among the key's
        # writers (a clock read after the commit could race with the other process's).
        cursor.execute(f"SELECT writes FROM {OutboxKey._meta.db_table} WHERE ordering_key = %s", ["customer:1"])
        place = cursor.fetchone()[0]
    while not go.exists():
        time.sleep(0.02)
print(place, flush=True)  # committed
"""


def test_ordering_key_follows_commit_order_across_django_processes(
    django_db_url: str, tmp_path: Path
) -> None:
    import subprocess

    from django_outbox_procs import env_for
    from outbox_helpers import HERE, PYTHON

    def writer(label: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [PYTHON, "-c", WRITER, label, str(tmp_path / f"{label}.inserted"), str(tmp_path / f"{label}.go")],
            env=env_for(django_db_url), cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    a = writer("A")
    try:
        wait_for((tmp_path / "A.inserted").exists, "A's insert")
        (tmp_path / "B.go").touch()  # B will commit as soon as it has inserted, before A
        b = writer("B")
        wait_for((tmp_path / "B.ready").exists, "B to be about to insert")
        try:
            b.wait(timeout=1.5)  # without the key lock, B would have inserted and committed by now
        except subprocess.TimeoutExpired:
            pass
        assert not (tmp_path / "B.inserted").exists()  # blocked on the key's lock, behind A
        (tmp_path / "A.go").touch()
        a_out, a_err = a.communicate(timeout=60)
        b_out, b_err = b.communicate(timeout=60)
    finally:
        for proc in (a, locals().get("b")):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert a.returncode == 0 and b.returncode == 0, a_err + b_err
    commit_order = [label for _, label in sorted([(int(a_out), "A"), (int(b_out), "B")])]  # by place
    assert commit_order == ["A", "B"]  # B waited on the key's lock until A committed
    relay = start_relay(django_db_url, tmp_path, 0, "--until-idle", "--executor", "outbox_support.log_label")
    assert relay.wait(timeout=60) == 0
    assert (tmp_path / "labels.log").read_text().split() == commit_order
