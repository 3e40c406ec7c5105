"""The task queue: Huey with SQLite storage (a file next to the database; no server)."""

from django.conf import settings
from huey import SqliteHuey

huey = SqliteHuey("shop", filename=str(settings.DATA_DIR / "huey.sqlite3"))
