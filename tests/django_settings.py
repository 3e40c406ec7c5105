"""Django settings for the whole pytest session (pytest-django reads them:
``DJANGO_SETTINGS_MODULE = "django_settings"``).

The database comes from ``AIRLOCK_TEST_DJANGO_DB``: ``sqlite`` (default) or
``postgres`` (server from ``AIRLOCK_TEST_POSTGRES_URL``, database
``airlock_django`` so the test databases are ``test_airlock_django*``). Two
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


def _postgres(name: str) -> dict[str, object]:
    url = urlsplit(service_url("postgres"))
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(url.username or "postgres"),
        "PASSWORD": unquote(url.password or ""),
        "HOST": url.hostname or "127.0.0.1",
        "PORT": str(url.port or 5432),
        "TEST": {"NAME": f"test_{name}"},
    }


if DJANGO_DB == "postgres":
    DATABASES = {
        "default": _postgres("airlock_django"),
        "other": _postgres("airlock_django_other"),
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

# executors branch: django-q2 cluster on the Redis test service, DB 5 (the
# executors helper's DB range is 1-6).
_redis = urlsplit(os.environ.get("AIRLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
Q_CLUSTER = {
    "name": "airlock-exec",
    "workers": 1,
    "timeout": 30,
    "retry": 60,
    "save_limit": -1,  # results are reported through Redis by the test tasks, not the ORM
    "scheduler": False,
    "catch_up": False,
    "poll": 0.1,
    "redis": {"host": _redis.hostname or "127.0.0.1", "port": _redis.port or 6379, "db": 5},
}
