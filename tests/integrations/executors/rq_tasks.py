"""Module-level tasks for the RQ tests (RQ workers import tasks by dotted path)."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from integrations.redis_dbs import redis_test_db, redis_url_for_db

RQ_DB = redis_test_db()  # the one database AIRLOCK_TEST_REDIS_URL names


def record(results_key: str, value: Any, tag: str = "run") -> str:
    """Append what it ran with to ``results_key`` in the RQ tests' Redis DB."""
    client = redis.Redis.from_url(redis_url_for_db(RQ_DB))
    try:
        client.rpush(results_key, json.dumps({"value": value, "tag": tag, "at": time.time()}))
    finally:
        client.close()
    return f"recorded {value}"


class Recorder:
    """A callable instance: RQ pickles it and calls it on the worker."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __call__(self, results_key: str, value: Any) -> str:
        return record(results_key, value, tag=self.tag)
