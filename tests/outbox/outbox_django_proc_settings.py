"""Django settings for the outbox's multi-process tests: the database comes from $AIRLOCK_OUTBOX_DJANGO_URL."""

import os
from urllib.parse import urlsplit

_url = urlsplit(os.environ["AIRLOCK_OUTBOX_DJANGO_URL"])
_engine = {"postgresql": "django.db.backends.postgresql", "mysql": "django.db.backends.mysql"}[_url.scheme]

SECRET_KEY = "airlock-outbox-tests"
USE_TZ = True
INSTALLED_APPS = ["airlock.outbox.django"]
DATABASES = {
    "default": {
        "ENGINE": _engine,
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
    }
}
if _url.scheme == "mysql":
    import pymysql

    pymysql.install_as_MySQLdb()
    # Django checks the mysqlclient version; PyMySQL reports its own.
    pymysql.version_info = (2, 2, 7, "final", 0)  # type: ignore[assignment]
    DATABASES["default"]["OPTIONS"] = {"isolation_level": "read committed"}
