"""``DjangoOutboxScope``: the outbox on Django's database connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...integrations._extras import requires

with requires("django"):
    from asgiref.sync import sync_to_async
    from django.db import DEFAULT_DB_ALIAS, connections, transaction
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.utils import timezone

from ..._intent import Intent
from ..._protocols import Policy
from .._base import COMMITTED, OPEN, BaseOutboxScope
from .._sql import Row, multirow_inserts, ordering_keys, postgres_insert

__all__ = ["DjangoOutboxScope"]

# The OutboxRow fields of airlock.outbox._sql.COLUMNS, in that order (the rest keep their NULL).
_INSERTED = (
    "outbox_id", "task", "name", "args", "kwargs", "options", "ordering_key", "origin", "context", "state",
    "attempts", "created_at",
)  # fmt: skip


class _Marker:
    """A no-op ``on_commit`` callback whose fate tells where its block stands.

    Pending in ``run_on_commit``: the block is part of the open transaction.
    Called: the transaction committed. Gone without being called: it rolled back.
    """

    __slots__ = ("connection", "fired")

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.fired = False

    def __call__(self) -> None:
        self.fired = True

    def pending(self) -> bool:
        return any(entry[1] is self for entry in self.connection.run_on_commit)

    def alive(self) -> bool:
        return self.fired or self.pending()


def _marker_for(connection: BaseDatabaseWrapper) -> _Marker:
    """One marker per transaction + savepoint level (not one per intent).

    Kept in the same way as ``DjangoScope`` keeps its own (that helper is
    private to the Django integration): cached per level and keyed on the
    identity of ``run_on_commit``, which Django replaces whenever a
    transaction ends or a savepoint rolls back.
    """
    pending = connection.run_on_commit
    level = tuple(connection.savepoint_ids)
    cache: tuple[list[Any], dict[tuple[Any, ...], _Marker]] | None = getattr(
        connection, "_airlock_outbox_markers", None
    )
    if cache is None or cache[0] is not pending:
        cache = (pending, {})
        connection._airlock_outbox_markers = cache
    marker = cache[1].get(level)
    if marker is None or marker.fired:
        marker = _Marker(connection)
        connection.on_commit(marker)
        cache[1][level] = marker
    return marker


class DjangoOutboxScope(BaseOutboxScope):
    """Write the intents this scope flushes into the ``airlock_outbox`` table of database ``using``.

    Each intent is tied, at enqueue, to the ``atomic()`` block it is made in
    (one marker per transaction and savepoint level); its row is written at
    this scope's flush, in that transaction, so it commits or rolls back with
    the business data. An intent whose block rolled back is void and never
    stored. Django has no hook that runs *before* a commit, so an intent whose
    transaction already committed when the scope flushes can no longer be
    stored in it: the flush raises [`airlock.UsageError`][airlock.UsageError] instead of
    writing the row late, in a transaction of its own. Open the scope inside
    the ``atomic()`` block (or use ``ATOMIC_REQUESTS``). Intents made outside
    any ``atomic()`` block are written at the flush (in the transaction open
    then, or one of their own). On PostgreSQL the insert also issues
    ``NOTIFY airlock_outbox``, delivered at commit, so a listening relay
    wakes at once.
    """

    __slots__ = ("_using",)

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        using: str | None = None,
        executor: Callable[[Intent], Any] | None = None,
        origin: str | None = None,
    ) -> None:
        using = DEFAULT_DB_ALIAS if using is None else using
        if using not in connections:
            raise ValueError(f"DjangoOutboxScope(using=...): no database {using!r} in DATABASES")
        self._using = using
        super().__init__(policy, executor=executor, origin=origin)

    @property
    def using(self) -> str:
        return self._using

    def _tie(self, intent: Intent) -> _Marker | None:
        connection = transaction.get_connection(self._using)
        if not connection.in_atomic_block:
            return None
        marker = _marker_for(connection)
        intent.add_condition(marker.alive)
        return marker

    def _tie_alive(self, tie: Any) -> bool:
        return tie is None or bool(tie.alive())

    def _where(self, tie: Any) -> str:
        if tie is None or not tie.fired:
            return OPEN
        return COMMITTED

    def _insert(self, rows: list[Row]) -> None:
        from .models import OutboxKey, OutboxRow

        connection = connections[self._using]
        quote = connection.ops.quote_name
        # Driver SQL (see airlock.outbox._sql): bulk_create would prepare every
        # field of every row through the ORM, which costs more than the write.
        created = OutboxRow._meta.get_field("created_at").get_db_prep_value(
            timezone.now(),  # aware or naive, as the project's USE_TZ wants
            connection,
        )
        table = quote(OutboxRow._meta.db_table)
        columns = [quote(OutboxRow._meta.get_field(f).column) for f in _INSERTED]
        if connection.vendor == "postgresql":  # the rows and the relay's NOTIFY, one statement
            inserts = [postgres_insert(table, columns, rows, created, OutboxRow._meta.db_table)]
        else:
            inserts = list(multirow_inserts(table, columns, "%s", rows, created))
        keys = ordering_keys(rows)
        with transaction.atomic(using=self._using), connection.cursor() as cursor:
            # A savepoint if a transaction is open, else a transaction of its own.
            if keys:
                # Lock each key until the transaction ends: rows of one key are numbered in commit order.
                keys_table = quote(OutboxKey._meta.db_table)
                for key in keys:
                    if connection.vendor == "mysql":
                        upsert = f"INSERT INTO {keys_table} (ordering_key, writes) VALUES (%s, 1) "
                        upsert += "ON DUPLICATE KEY UPDATE writes = writes + 1"
                    else:
                        upsert = f"INSERT INTO {keys_table} (ordering_key, writes) VALUES (%s, 1) "
                        upsert += f"ON CONFLICT (ordering_key) DO UPDATE SET writes = {keys_table}.writes + 1"
                    cursor.execute(upsert, [key])
            for sql, params in inserts:
                cursor.execute(sql, params)

    async def _ainsert(self, rows: list[Row]) -> None:
        await sync_to_async(self._insert)(rows)
