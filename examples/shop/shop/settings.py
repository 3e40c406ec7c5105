"""Settings of the demo shop: SQLite for the data, Huey on SQLite for the tasks."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# Where the two SQLite files live (the tests point this at a temporary directory).
DATA_DIR = Path(os.environ.get("SHOP_DATA_DIR", BASE_DIR))

SECRET_KEY = "demo-shop-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
ROOT_URLCONF = "shop.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "airlock.integrations.django",
    "store",
]

MIDDLEWARE = [
    "airlock.integrations.django.AirlockMiddleware",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "db.sqlite3",
        "ATOMIC_REQUESTS": True,  # each view runs in one transaction
    }
}

AIRLOCK = {
    # Every intent that escapes is handed to Huey; the worker runs it.
    "EXECUTOR": "airlock.integrations.executors.huey.huey_executor",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"huey": {"level": "WARNING"}},
}
