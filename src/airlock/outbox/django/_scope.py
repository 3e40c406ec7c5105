"""``DjangoOutboxScope``: the outbox on Django's database connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from ..._intent import Intent
from ..._policies import PolicyProtocol
from .._base import BaseOutboxScope

__all__ = ["DjangoOutboxScope"]


class DjangoOutboxScope(BaseOutboxScope):
    """Write the intents this scope flushes into the ``airlock_outbox`` table of database ``using``.

    The rows are inserted in the transaction open at flush time (an
    ``atomic()`` block, or ``ATOMIC_REQUESTS``), so they commit or roll back
    with the business data. An intent enqueued inside an ``atomic()`` block
    (savepoint) that rolled back before the flush is void and never stored.
    On PostgreSQL the insert also issues ``NOTIFY airlock_outbox``, delivered
    at commit, so a listening relay wakes at once.
    """

    __slots__ = ("_using",)

    def __init__(
        self,
        policy: PolicyProtocol | None = None,
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

    def _transaction_condition(self) -> Callable[[], bool] | None:
        connection = transaction.get_connection(self._using)
        if not connection.in_atomic_block:
            return None
        # Django drops the on_commit callbacks of a savepoint (or transaction)
        # that rolls back: a marker callback still pending, or already run at
        # commit, means the work the intent belongs to survived.
        ran = [False]

        def marker() -> None:
            ran[0] = True

        transaction.on_commit(marker, using=self._using)
        return lambda: ran[0] or any(entry[1] is marker for entry in connection.run_on_commit)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        from .models import OutboxRow

        now = timezone.now()  # aware or naive, as the project's USE_TZ wants
        objs = []
        for row in rows:
            row = dict(row)
            row["outbox_id"] = row.pop("id")
            row["created_at"] = now
            objs.append(OutboxRow(**row))
        with transaction.atomic(using=self._using):  # a savepoint if a transaction is open, else its own
            OutboxRow.objects.using(self._using).bulk_create(objs)
            connection = connections[self._using]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_notify(%s, '')", [OutboxRow._meta.db_table])

    async def _ainsert(self, rows: list[dict[str, Any]]) -> None:
        await sync_to_async(self._insert)(rows)
