"""Settings of the server test project: PostgreSQL (``default``) + MariaDB (``other``).

Database URLs come from ``AIRLOCK_TEST_POSTGRES_URL`` / ``AIRLOCK_TEST_MYSQL_URL``
(the databases named there are used as they are: the test run owns them).
Tasks append what they saw to the JSON-lines file ``AIRLOCK_SERVER_RECORD``.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

import pymysql

pymysql.install_as_MySQLdb()

SECRET_KEY = "airlock-server-tests-only"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "serverproject.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "airlock.integrations.django",
    "django_tasks",
    "django_tasks_db",
    "serverproject.serverapp",
]

MIDDLEWARE = [
    # Sync-only, wraps everything below in atomic() (the shape of
    # django-reversion's RevisionMiddleware); outside airlock's.
    "serverproject.middleware.OuterAtomicMiddleware",
    # Turns the view's HandledError into a 200 through process_exception.
    "serverproject.middleware.HandledErrorMiddleware",
    "airlock.integrations.django.AirlockMiddleware",
]

AIRLOCK = {
    # Django task objects go to django-tasks' database backend (an ORM write at
    # dispatch); plain functions run in-process, in the server process.
    "EXECUTOR": "airlock.integrations.executors.django_tasks.django_tasks_executor",
}

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def _db(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    engine = "postgresql" if parts.scheme.startswith("postgres") else "mysql"
    return {
        "ENGINE": f"django.db.backends.{engine}",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ("postgres" if engine == "postgresql" else "root")),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or (5432 if engine == "postgresql" else 3306)),
    }


DATABASES = {
    "default": _db(os.environ["AIRLOCK_TEST_POSTGRES_URL"]),
    "other": _db(os.environ["AIRLOCK_TEST_MYSQL_URL"]),
}
