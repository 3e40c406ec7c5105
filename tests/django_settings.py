"""Django settings for the whole pytest session (pytest-django reads them:
``DJANGO_SETTINGS_MODULE = "django_settings"``).

The database comes from ``AIRLOCK_TEST_DJANGO_DB``: ``sqlite`` (default) or
``postgres`` (server and database from ``AIRLOCK_TEST_POSTGRES_URL``; Django's
test databases are ``<that database>_djtest`` and ``<that database>_djtest_other``). Two
aliases, ``default`` and ``other``, for multi-database tests.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from services import service_url

SECRET_KEY = "airlock-tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "integrations.django.testapp.urls"
ALLOWED_HOSTS = ["*"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

# One app per line: each integration appends its own.
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    # django helper: the integration and its test app
    "airlock.integrations.django",
    "integrations.django.testapp",
    # outbox branch: the outbox app and its admin (the admin test sets its own middleware/urls)
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "airlock.outbox.django",
    # executors branch: the django-q2 and django-tasks executors' tests
    "django_q",
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    "airlock.integrations.django.AirlockMiddleware",
]

# outbox branch: the admin is installed for the outbox admin test, which brings its own
# templates, session/auth/messages middleware and URLs (override_settings); the rest of the
# suite keeps the minimal stack above, so the admin's checks for those are silenced here.
SILENCED_SYSTEM_CHECKS = ["admin.E403", "admin.E408", "admin.E409", "admin.E410"]

DJANGO_DB = os.environ.get("AIRLOCK_TEST_DJANGO_DB", "sqlite")


def _postgres(suffix: str) -> dict[str, object]:
    # The server and database come from AIRLOCK_TEST_POSTGRES_URL; Django's test
    # databases are named after that database (test_tooling -> test_tooling_djtest),
    # so two checkouts on one server never create or drop each other's.
    url = urlsplit(service_url("postgres"))
    name = url.path.strip("/") or "postgres"
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(url.username or "postgres"),
        "PASSWORD": unquote(url.password or ""),
        "HOST": url.hostname or "127.0.0.1",
        "PORT": str(url.port or 5432),
        "TEST": {"NAME": f"{name}_{suffix}"},
    }


if DJANGO_DB == "postgres":
    DATABASES = {
        "default": _postgres("djtest"),
        "other": _postgres("djtest_other"),
    }
elif DJANGO_DB == "sqlite":
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }
else:
    raise RuntimeError(f"AIRLOCK_TEST_DJANGO_DB must be 'sqlite' or 'postgres', got {DJANGO_DB!r}")

# executors branch: django-tasks backends. "default" stays Django's own
# default (run immediately); "database" is the real queue + db_worker.
TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "database": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "airlock-exec-other"]},
}

# executors branch: django-q2 cluster on the Redis test service, in the database its
# URL names (tests/integrations/redis_dbs.py: the suite uses no other).
_redis = urlsplit(service_url("redis"))
Q_CLUSTER = {
    "name": "airlock-exec",
    "workers": 1,
    "timeout": 30,
    "retry": 60,
    "save_limit": -1,  # results are reported through Redis by the test tasks, not the ORM
    "scheduler": False,
    "catch_up": False,
    "poll": 0.1,
    "redis": {"host": _redis.hostname or "127.0.0.1", "port": _redis.port or 6379, "db": int(_redis.path.strip("/") or 0)},
}
