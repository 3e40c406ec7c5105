"""What the requests enqueue. Each run records, in the process that runs it,
whether a connection of its own could read the row its request wrote."""

from __future__ import annotations

import json
import os
import threading

from django.db import connections

try:  # Django >= 6.0
    from django.tasks import task
except ImportError:  # the backport
    from django_tasks import task


def row_visible(label: str, alias: str) -> bool:
    """Read the row through a NEW connection: it sees only what is committed."""
    connection = connections.create_connection(alias)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM serverapp_order WHERE label = %s", [label])
            return bool(cursor.fetchone()[0])
    finally:
        connection.close()


def check_row(label: str, alias: str = "default") -> None:
    record = {
        "label": label,
        "alias": alias,
        "saw_row": row_visible(label, alias),
        "pid": os.getpid(),
        "thread": threading.get_ident(),
    }
    with open(os.environ["AIRLOCK_SERVER_RECORD"], "a") as out:
        out.write(json.dumps(record) + "\n")


@task()
def check_row_task(label: str, alias: str = "default") -> None:
    check_row(label, alias)
