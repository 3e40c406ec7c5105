"""Module-level tasks for the django-q tests (django-q pickles tasks by dotted path)."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from integrations.redis_dbs import redis_test_db, redis_url_for_db

DJANGO_Q_DB = redis_test_db()  # the one database AIRLOCK_TEST_REDIS_URL names


def record(results_key: str, value: Any, tag: str = "run") -> str:
    """Append what it ran with to ``results_key`` in the django-q tests' Redis DB."""
    client = redis.Redis.from_url(redis_url_for_db(DJANGO_Q_DB))
    try:
        client.rpush(results_key, json.dumps({"value": value, "tag": tag, "at": time.time()}))
    finally:
        client.close()
    return f"recorded {value}"
