"""Django settings for the whole pytest session (``DJANGO_SETTINGS_MODULE = "django_settings"``).

Minimal version from the executors branch; the django helper's version is
the main one - merge, keeping both sides' apps and settings.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

SECRET_KEY = "airlock-tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
    }
}

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    # outbox branch: the outbox app and its admin
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "airlock.outbox.django",
    # executors branch: the django-q2 and django-tasks executors' tests
    "django_q",
    "django_tasks",
    "django_tasks_db",
]

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

# outbox branch: the admin (tests/outbox/django) needs these.
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "django_urls"

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
