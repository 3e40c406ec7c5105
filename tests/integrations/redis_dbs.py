"""The one Redis database the suite may use, and per-test cleanup without flushing.

Every Redis test (Celery, Dramatiq, Huey, RQ, django-q) works in the database
named by ``AIRLOCK_TEST_REDIS_URL`` (``redis://host:port/<db>``) and in no
other. Nothing ever flushes it: the suite may share a Redis server, and even a
database, with other work (CONTRIBUTING.md, "Services"). Instead each test
names its own queues and keys (``airlock-exec-<random>`` prefixes), and
:func:`flushed_redis` deletes, after the test, exactly the keys that appeared
during it.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import redis

from services import require_service, service_url


def redis_test_db() -> int:
    """The database number in ``AIRLOCK_TEST_REDIS_URL`` (0 when the URL names none)."""
    path = urlsplit(service_url("redis")).path.strip("/")
    return int(path) if path else 0


def redis_url_for_db(db: int) -> str:
    """The Redis test service URL; ``db`` must be its own database (:func:`redis_test_db`).

    Kept with its argument so a test states which database it expects: asking
    for any other one is a mistake the suite refuses, rather than writing there.
    """
    if db != redis_test_db():
        raise AssertionError(
            f"the suite may only use Redis DB {redis_test_db()} (from AIRLOCK_TEST_REDIS_URL), not DB {db}"
        )
    return require_service("redis")


def _keys(client: redis.Redis) -> set[bytes]:
    return set(client.scan_iter(count=1000))


def flushed_redis(db: int) -> Iterator[redis.Redis]:
    """A client on the test database; after the test, the keys it created are deleted.

    Not a flush: keys that existed before the test (someone else's, or a
    framework's shared bookkeeping) are left alone.
    """
    client = redis.Redis.from_url(redis_url_for_db(db))
    before = _keys(client)
    try:
        yield client
    finally:
        created = _keys(client) - before
        if created:
            client.delete(*created)
        client.close()
