"""Private Redis databases for the executor and Celery tests.

The executors helper owns Redis DBs 1-6 (celery 1, dramatiq 2, huey 3, rq 4,
django-q 5, bench 6); each test flushes its DB before and after, so tests
never see each other's messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import redis

from services import require_service


def redis_url_for_db(db: int) -> str:
    """The Redis test service URL, pointed at database ``db``."""
    assert 1 <= db <= 6, "the executors tests own Redis DBs 1-6 only"
    parts = urlsplit(require_service("redis"))
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


def flushed_redis(db: int) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url_for_db(db))
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()
