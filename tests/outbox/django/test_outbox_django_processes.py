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
