"""SQL written directly, shared by both ORMs: a flush's INSERT, the relay's PostgreSQL settings.

Written directly rather than through the ORM: for the ten rows of a typical
flush, the ORM's per-execution work (compiling, expanding and processing a
hundred-odd parameters) costs more than the round trip.

- PostgreSQL: one ``INSERT ... SELECT FROM jsonb_array_elements(rows)``
  whatever the row count, with the relay's ``NOTIFY`` in the same statement.
  Its text never changes, so the driver parses it once and psycopg 3
  prepares it after a few flushes (a multi-row ``VALUES`` has a new text and
  12 parameters per row, which psycopg neither caches nor prepares).
- Elsewhere: one multi-row ``INSERT ... VALUES (...), (...)`` per 500 rows.

Each takes the table and the 12 column names already quoted, in `COLUMNS` order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from ._model import PENDING

__all__ = [
    "COLUMNS",
    "ROWS_PER_STATEMENT",
    "Row",
    "as_dicts",
    "multirow_inserts",
    "ordering_keys",
    "postgres_insert",
    "postgres_relay_settings",
]

#: The columns a new row sets, in the order of every statement here (the rest stay NULL).
#: The first nine are a `Row`; ``state``, ``attempts`` and ``created_at`` are the same for every row.
COLUMNS = (
    "id", "task", "name", "args", "kwargs", "options", "ordering_key", "origin", "context", "state",
    "attempts", "created_at",
)  # fmt: skip
ROWS_PER_STATEMENT = 500  # 12 parameters each: within every driver's limit

#: A new row's own values, in `COLUMNS` order: ``(id, *Payload)``.
Row = tuple[Any, ...]
_PER_ROW = len(COLUMNS) - 3
_KEY = COLUMNS.index("ordering_key")  # where a Row holds its ordering key
_FIELDS = ", ".join(f"e->>{i}" for i in range(_PER_ROW))  # a Row's values out of its JSON array
# Every value of a Row is a str or None. Not ASCII-escaped: the text goes
# through the connection's encoding like any other parameter (an escaped
# non-ASCII character would need a UTF-8 server). A NUL (which json escapes as
# \u0000, and no text column can hold) is refused at enqueue.
_rows_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def ordering_keys(rows: Sequence[Row]) -> list[str]:
    """The distinct ordering keys of ``rows``, sorted: the order a flush locks them in (no deadlock
    between two flushes)."""
    return sorted({row[_KEY] for row in rows if row[_KEY] is not None})


def postgres_insert(
    table: str, columns: Sequence[str], rows: Sequence[Row], created: Any, channel: str
) -> tuple[str, tuple[Any, ...]]:
    """``(sql, params)``: insert ``rows`` and ``pg_notify(channel)``, in one statement (``%s`` marks).

    The rows travel as one JSON array of arrays, encoded in C by ``json``
    and taken apart by the server (``jsonb_array_elements``): a driver's
    array adapters would dump nine text arrays value by value, in Python,
    which cost a 10-row flush more than the server's whole insert.
    ``WITH ORDINALITY ... ORDER BY`` makes the rows take their ``seq`` in the
    order given, which is the order the relay dispatches them in.
    """
    sql = (
        f"WITH airlock_outbox_rows AS (INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT {_FIELDS}, %s, %s, %s "
        "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS r(e, n) "
        "ORDER BY n) SELECT pg_notify(%s, '')"
    )
    return sql, (PENDING, 0, created, _rows_json(rows), channel)


def multirow_inserts(
    table: str, columns: Sequence[str], mark: str, rows: Sequence[Row], created: Any
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """``(sql, params)`` per `ROWS_PER_STATEMENT` rows: ``INSERT ... VALUES (...), (...)`` with ``mark`` placeholders."""
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    one = "(" + ", ".join([mark] * len(COLUMNS)) + ")"
    shared = (PENDING, 0, created)
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        params: list[Any] = []
        for row in chunk:
            params += row
            params += shared
        yield head + ", ".join([one] * len(chunk)), tuple(params)


def as_dicts(rows: Sequence[Row], created: Any) -> list[dict[str, Any]]:
    """``rows`` as column -> value mappings, for drivers the statements above do not fit."""
    return [dict(zip(COLUMNS, (*row, PENDING, 0, created), strict=True)) for row in rows]


def postgres_relay_settings(*, claiming: bool = False) -> str:
    """The statement that starts each of the relay's own PostgreSQL transactions (``SET LOCAL``: that one only).

    - Commit without waiting for the disk. Claims and outcomes are the
      relay's bookkeeping: if the database server itself crashes within the
      fraction of a second it may lose of them, rows go back to where they
      were (pending, or in flight until their lease ends) and are sent again,
      a duplicate, which at-least-once delivery allows. The rows the
      application committed are never touched by this. What it saves is a
      disk flush per batch, on every batch.
    - When claiming, walk the claimable rows in ``seq`` order by the partial
      index and stop at the batch size. Table statistics lag behind an
      outbox's churn (a burst of rows arrives between two autovacuum runs),
      and with stale ones the planner fetches every claimable row through a
      bitmap and sorts them all to keep the first batch: three times slower
      on 10,000 rows, and worse the larger the backlog.

    ``set_config(..., true)`` is ``SET LOCAL`` as one statement any driver can send.
    """
    settings = (
        ("synchronous_commit", "enable_bitmapscan", "enable_sort") if claiming else ("synchronous_commit",)
    )
    return "SELECT " + ", ".join(f"set_config('{name}', 'off', true)" for name in settings)
