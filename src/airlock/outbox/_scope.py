"""``OutboxScope``: the outbox on a SQLAlchemy ``Session``."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, event, insert, text
from sqlalchemy.orm import Session, SessionTransaction

from .._intent import Intent
from .._policies import PolicyProtocol
from ._base import BaseOutboxScope
from ._table import table as default_table

__all__ = ["OutboxScope"]

_ROLLBACKS_KEY = "airlock_outbox_rolled_back"


def _rolled_back(session: Session) -> weakref.WeakSet[SessionTransaction]:
    """The transactions of ``session`` that rolled back (tracked once per session)."""
    found = session.info.get(_ROLLBACKS_KEY)
    if found is None:
        found = session.info[_ROLLBACKS_KEY] = weakref.WeakSet()

        def remember(session: Session, previous_transaction: SessionTransaction) -> None:
            found.add(previous_transaction)

        event.listen(session, "after_soft_rollback", remember)
    return found


class OutboxScope(BaseOutboxScope):
    """Write the intents this scope flushes into the outbox table, through ``session``.

    ``airlock.scope(_cls=OutboxScope, session=session)``: at flush the allowed
    intents are inserted in the session's current transaction, so they commit
    or roll back with the business data. An intent enqueued inside a savepoint
    (``session.begin_nested()``) or a transaction that rolled back before the
    flush is void and never stored. ``table`` picks another outbox table
    (default :data:`airlock.outbox.table`). On PostgreSQL the insert also
    issues ``NOTIFY <table name>``, delivered at commit, so a listening relay
    wakes at once.
    """

    __slots__ = ("_session", "_table", "_tracked")

    def __init__(
        self,
        policy: PolicyProtocol | None = None,
        *,
        session: Session | None = None,
        table: Table | None = None,
        executor: Callable[[Intent], Any] | None = None,
        origin: str | None = None,
    ) -> None:
        if not isinstance(session, Session):
            raise TypeError(
                f"OutboxScope(session=...) needs the SQLAlchemy Session whose transaction the rows join, "
                f"got {session!r}"
            )
        if table is not None and not isinstance(table, Table):
            raise TypeError(f"OutboxScope(table=...) needs a sqlalchemy.Table (see outbox_table()), got {table!r}")
        self._session = session
        self._table = default_table if table is None else table
        self._tracked = _rolled_back(session)
        super().__init__(policy, executor=executor, origin=origin)

    @property
    def session(self) -> Session:
        return self._session

    def _transaction_condition(self) -> Callable[[], bool] | None:
        current = self._session.get_transaction()
        if current is None:
            return None  # no transaction yet: the flush's insert starts (and belongs to) the next one
        chain: list[SessionTransaction] = []
        node: SessionTransaction | None = self._session.get_nested_transaction() or current
        while node is not None:
            chain.append(node)
            node = node.parent
        rolled_back = self._tracked
        return lambda: not any(t in rolled_back for t in chain)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        session = self._session
        session.execute(insert(self._table), rows)
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": self._table.name})
