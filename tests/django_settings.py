"""Django settings for the whole pytest session (pytest-django reads them).

The database comes from ``AIRLOCK_TEST_DJANGO_DB``: ``sqlite`` (default) or
``postgres`` (server from ``AIRLOCK_TEST_POSTGRES_URL``, database
``airlock_django`` so the test databases are ``test_airlock_django*``). Two
aliases, ``default`` and ``other``, for multi-database tests.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from services import service_url

SECRET_KEY = "airlock-tests"
DEBUG = False
USE_TZ = True
ROOT_URLCONF = "integrations.django.testapp.urls"
ALLOWED_HOSTS = ["*"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

# One app per line: other integrations append theirs.
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "airlock.integrations.django",
    "integrations.django.testapp",
]

MIDDLEWARE = [
    "airlock.integrations.django.AirlockMiddleware",
]

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
