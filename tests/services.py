"""Where the real services live, and the skip-or-fail rule for reaching them.

A test that needs a service asks for its fixture (``postgres_url``,
``mysql_url``, ``redis_url``, ``amqp_url``). The URL comes from
``AIRLOCK_TEST_<NAME>_URL`` with the local default. If nothing answers there,
the test is skipped with the reason, or fails when ``AIRLOCK_REQUIRE_SERVICES=1``
(as in ``.ci/run``), so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

DEFAULTS = {
    "postgres": "postgresql://postgres@127.0.0.1:5432/test",
    "mysql": "mysql://root@127.0.0.1:3306/test",
    "redis": "redis://127.0.0.1:6379/0",
    "amqp": "amqp://guest:guest@127.0.0.1:5672//",
}
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "redis": 6379, "amqp": 5672}


def services_required() -> bool:
    return os.environ.get("AIRLOCK_REQUIRE_SERVICES") == "1"


def service_url(name: str) -> str:
    """The configured URL of service ``name`` (no reachability check)."""
    return os.environ.get(f"AIRLOCK_TEST_{name.upper()}_URL", DEFAULTS[name])


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str) -> str:
    """The URL of service ``name``; skip (or fail under AIRLOCK_REQUIRE_SERVICES=1) if it is down."""
    url = service_url(name)
    if not _answers(url, DEFAULT_PORTS[name]):
        reason = f"{name} is not reachable at {url} (set AIRLOCK_TEST_{name.upper()}_URL)"
        if services_required():
            pytest.fail(f"AIRLOCK_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return url
