"""The outbox table as SQLAlchemy Core metadata.

Add it to your own ``MetaData`` (``outbox_table(Base.metadata)``) and Alembic's
autogenerate picks it up like any other table; or let
``python -m airlock.outbox init --url ...`` create it.
"""

from __future__ import annotations

from typing import Any

from ..integrations._extras import requires

with requires("sqlalchemy"):
    from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text, text
    from sqlalchemy.dialects import mysql

from ._model import PENDING

__all__ = ["DEFAULT_TABLE_NAME", "keys_table", "metadata", "outbox_table", "table"]

DEFAULT_TABLE_NAME = "airlock_outbox"

# Microseconds everywhere: MySQL/MariaDB DATETIME would otherwise round to the
# second, and retry times / ages need better than that.
_Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
_Seq = BigInteger().with_variant(Integer(), "sqlite")


_PARTIAL = ("postgresql", "sqlite")


def _partial(where: str) -> dict[str, Any]:
    return {f"{dialect}_where": text(where) for dialect in _PARTIAL}


def outbox_table(metadata: MetaData, name: str = DEFAULT_TABLE_NAME) -> Table:
    """Define the outbox table named ``name`` in ``metadata`` and return it.

    ``seq`` (auto-increment) gives the dispatch order; ``id`` (a UUID string)
    is the idempotency key handed to the task. A second table,
    ``<name>_keys``, is defined with it (see `keys_table()`).
    """
    Table(
        f"{name}_keys",
        metadata,
        Column("ordering_key", String(200), primary_key=True),
        Column("writes", BigInteger, nullable=False, default=0),
    )
    return Table(
        name,
        metadata,
        Column("seq", _Seq, primary_key=True, autoincrement=True),
        Column("id", String(36), nullable=False, unique=True),
        Column("task", String(255), nullable=False),
        Column("name", String(200), nullable=False),
        Column("args", Text, nullable=False),
        Column("kwargs", Text, nullable=False),
        Column("options", Text, nullable=True),
        Column("ordering_key", String(200), nullable=True),
        Column("origin", Text, nullable=True),
        Column("context", Text, nullable=True),
        Column("state", String(16), nullable=False, default=PENDING),
        Column("attempts", Integer, nullable=False, default=0),
        Column("created_at", _Timestamp, nullable=False),
        Column("available_at", _Timestamp, nullable=True),
        Column("lease_until", _Timestamp, nullable=True),
        Column("claim_token", String(36), nullable=True),
        Column("done_at", _Timestamp, nullable=True),
        Column("last_error", Text, nullable=True),
        # Partial indexes where the database has them (PostgreSQL, SQLite): unkeyed and unclaimed
        # rows are not in the key/token indexes, and the claim's ordered scan walks the claimable
        # rows alone (due_idx), not the done rows piled up at the low end of seq until they are
        # pruned. MySQL/MariaDB have no partial indexes: they use (state, seq).
        Index(f"{name}_claim_idx", "state", "seq"),
        Index(f"{name}_due_idx", "seq", **_partial("state IN ('pending', 'inflight')")),
        Index(f"{name}_key_idx", "ordering_key", "seq", **_partial("ordering_key IS NOT NULL")),
        Index(f"{name}_token_idx", "claim_token", **_partial("claim_token IS NOT NULL")),
    )


def keys_table(table: Table) -> Table:
    """The ordering-key lock table that goes with the outbox ``table``.

    One row per ordering key. A transaction that writes outbox rows with a key
    first updates that key's row here and holds its lock until it commits, so
    transactions writing the same key take turns: their rows get ``seq``
    values in COMMIT order, which is the order the relay dispatches them in,
    even when two transactions would otherwise insert in one order and commit
    in the other.
    """
    name = f"{table.name}_keys"
    found = table.metadata.tables.get(name)
    if found is None:  # pragma: no cover - a table not made by outbox_table()
        raise ValueError(f"{table.name!r} has no ordering-key table {name!r}; define it with outbox_table()")
    return found


#: The default metadata and table, for applications that do not bring their own.
metadata = MetaData()
table = outbox_table(metadata)
