"""The suite's safety on shared services: only the databases the AIRLOCK_TEST_* URLs name.

``make test`` may run beside other work on the same Redis and PostgreSQL
servers (CONTRIBUTING.md, "Services"): it never flushes a Redis database and
never creates or drops a database not named after the one it was given.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from integrations.redis_dbs import flushed_redis, redis_test_db, redis_url_for_db
from services import require_service

TESTS = Path(__file__).parents[1]


def test_the_database_number_comes_from_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
    assert redis_test_db() == 7
    monkeypatch.setenv("AIRLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    assert redis_test_db() == 0


def test_any_other_database_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
    with pytest.raises(AssertionError, match="only use Redis DB 7 .* not DB 1"):
        redis_url_for_db(1)


def test_cleanup_deletes_only_the_keys_made_during_the_test() -> None:
    require_service("redis")
    outside = redis.Redis.from_url(redis_url_for_db(redis_test_db()))
    mark = uuid.uuid4().hex
    existing, made = f"airlock-test-existing-{mark}", f"airlock-test-made-{mark}"
    outside.set(existing, "someone else's")
    try:
        cleanup = flushed_redis(redis_test_db())
        client = next(cleanup)
        client.rpush(made, "mine")
        with pytest.raises(StopIteration):
            next(cleanup)  # the end of the test
        assert outside.get(existing) == b"someone else's"  # not flushed
        assert not outside.exists(made)
    finally:
        outside.delete(existing, made)
        outside.close()


def test_django_settings_take_names_from_the_urls() -> None:
    env = {
        **os.environ,
        "AIRLOCK_TEST_DJANGO_DB": "postgres",
        "AIRLOCK_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/mine",
        "AIRLOCK_TEST_REDIS_URL": "redis://127.0.0.1:6379/9",
    }
    code = (
        "import json, django_settings as s; print(json.dumps({a: d['TEST']['NAME'] for a, d in"
        " s.DATABASES.items()} | {'names': sorted({d['NAME'] for d in s.DATABASES.values()}),"
        " 'q_db': s.Q_CLUSTER['redis']['db']}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=TESTS, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "default": "mine_djtest",
        "other": "mine_djtest_other",
        "names": ["mine"],
        "q_db": 9,
    }
