"""``OutboxScope``: the outbox on a SQLAlchemy ``Session`` (or ``AsyncSession``)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from ..integrations._extras import requires

with requires("sqlalchemy"):
    from sqlalchemy import Connection, Table, event, insert, text
    from sqlalchemy.dialects import mysql, postgresql, sqlite
    from sqlalchemy.orm import Session, SessionTransaction

from .._errors import UsageError
from .._intent import Intent
from .._lifecycle import _EXITED
from .._protocols import Policy
from ._base import COMMITTED, OPEN, BaseOutboxScope
from ._model import utcnow
from ._sql import COLUMNS, Row, as_dicts, multirow_inserts, ordering_keys, postgres_insert
from ._table import keys_table
from ._table import table as default_table

try:  # the asyncio extension needs greenlet, which sync-only installs may lack
    from sqlalchemy.ext.asyncio import AsyncSession
except ImportError:  # pragma: no cover - exercised only without greenlet
    AsyncSession = None  # type: ignore[assignment,misc]

__all__ = ["OutboxScope"]

_STATE_KEY = "airlock_outbox"


class _Tie:
    """The transaction an intent was made in: the chain of (nested) transactions open at enqueue.

    ``chain`` is None while the session had no transaction at enqueue; the
    next root transaction begun on the session adopts it (SPEC §5.5).
    """

    __slots__ = ("chain", "state")

    def __init__(self, chain: tuple[SessionTransaction, ...] | None, state: _SessionState) -> None:
        self.chain = chain
        self.state = state

    @property
    def root(self) -> SessionTransaction | None:
        return self.chain[-1] if self.chain else None

    def alive(self) -> bool:
        """False once the transaction (or a savepoint of it) rolled back, or ended without committing."""
        chain = self.chain
        if chain is None:
            return True
        state = self.state
        if any(t in state.rolled_back for t in chain):
            return False
        root = chain[-1]
        return root in state.committed or root is state.current()


class _SessionState:
    """What the outbox follows on one session: rolled back / committed transactions, open scopes.

    Kept in ``session.info`` of the sessions an outbox scope is used with.
    SQLAlchemy calls it through listeners registered once on the ``Session``
    class (`_listen()`), which return at once for every other session:
    registering four listeners on each new session would cost more than the
    whole flush.
    """

    def __init__(self, session: Session) -> None:
        self._session = weakref.ref(session)
        self.rolled_back: weakref.WeakSet[SessionTransaction] = weakref.WeakSet()
        self.committed: weakref.WeakSet[SessionTransaction] = weakref.WeakSet()
        self.scopes: weakref.WeakSet[OutboxScope] = weakref.WeakSet()
        self.unbound: list[_Tie] = []
        self.committing: SessionTransaction | None = None

    def current(self) -> SessionTransaction | None:
        """The session's open root transaction, if any."""
        session = self._session()
        return None if session is None else session.get_transaction()

    @classmethod
    def of(cls, session: Session) -> _SessionState:
        found = session.info.get(_STATE_KEY)
        if found is None:
            _listen()
            found = session.info[_STATE_KEY] = cls(session)
        assert isinstance(found, cls)
        return found

    def after_soft_rollback(self, session: Session, previous_transaction: SessionTransaction) -> None:
        self.rolled_back.add(previous_transaction)

    def after_transaction_create(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None and self.unbound:
            # Intents made while the session had no transaction belong to the next one begun.
            for tie in self.unbound:
                tie.chain = (transaction,)
            self.unbound.clear()

    def before_commit(self, session: Session) -> None:
        if session.get_nested_transaction() is not None:
            return  # a savepoint is released: its intents stay with the enclosing transaction
        root = session.get_transaction()
        if root is None:  # pragma: no cover - SQLAlchemy commits a transaction
            return
        self.committing = root
        for scope in list(self.scopes):
            scope._store_committing(root)

    def after_commit(self, session: Session) -> None:
        if self.committing is not None:
            self.committed.add(self.committing)
            self.committing = None


_listening = False


def _listen() -> None:
    """Register the outbox's session listeners, once per process, on the ``Session`` class."""
    global _listening
    if _listening:
        return

    def forward(name: str) -> Callable[..., None]:
        def listener(session: Session, *args: Any) -> None:
            state = session.info.get(_STATE_KEY)
            if state is not None:
                getattr(state, name)(session, *args)

        return listener

    for name in ("after_soft_rollback", "after_transaction_create", "before_commit", "after_commit"):
        event.listen(Session, name, forward(name))
    _listening = True


class OutboxScope(BaseOutboxScope):
    """Write the intents this scope flushes into the outbox table, through ``session``.

    ``airlock.scope(_cls=OutboxScope, session=session)``. Each intent is tied,
    at enqueue, to the session's transaction open at that moment (or, when
    there is none, the next one begun), and its row is written in that
    transaction:

    - at this scope's flush, when the transaction is still open then;
    - at the transaction's commit (SQLAlchemy's ``before_commit``), when it
      commits while this scope is still open: so ``@airlock.scoped(_cls=OutboxScope, ...)``
      around a function that commits stores its rows in that very commit.

    An intent made inside a savepoint or transaction that rolled back is void
    and never stored. ``session`` may be an ``AsyncSession`` (use ``async
    with``). ``table`` picks another outbox table (default
    `airlock.outbox.table`). On PostgreSQL the insert also issues
    ``NOTIFY <table name>``, delivered at commit, so a listening relay wakes
    at once. Rows with an ordering key lock that key (``<table>_keys``) until
    the transaction ends, so they are numbered in commit order.
    """

    __slots__ = ("_async_session", "_last_tie", "_session", "_state_of_session", "_table")

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        session: Session | AsyncSession | None = None,
        table: Table | None = None,
        executor: Callable[[Intent], Any] | None = None,
        origin: str | None = None,
    ) -> None:
        if AsyncSession is not None and isinstance(session, AsyncSession):
            self._async_session: AsyncSession | None = session
            session = session.sync_session
        elif isinstance(session, Session):
            self._async_session = None
        else:
            raise TypeError(
                f"OutboxScope(session=...) needs the SQLAlchemy Session (or AsyncSession) whose transaction "
                f"the rows join, got {session!r}"
            )
        if table is not None and not isinstance(table, Table):
            raise TypeError(
                f"OutboxScope(table=...) needs a sqlalchemy.Table (see outbox_table()), got {table!r}"
            )
        self._session = session
        self._table = default_table if table is None else table
        self._state_of_session = _SessionState.of(session)
        # (innermost transaction, metadata before, tie, metadata after) of the last intent tied.
        self._last_tie: tuple[SessionTransaction, Any, _Tie, Any] | None = None
        super().__init__(policy, executor=executor, origin=origin)

    @property
    def session(self) -> Session | AsyncSession:
        return self._async_session or self._session

    def enter(self) -> OutboxScope:
        super().enter()
        self._state_of_session.scopes.add(self)
        return self

    __enter__ = enter

    # -- ties ------------------------------------------------------------------

    def _tie(self, intent: Intent) -> _Tie:
        session = self._session
        state = self._state_of_session
        innermost = session.get_nested_transaction() or session.get_transaction()
        if innermost is None:
            tie = _Tie(None, state)
            state.unbound.append(tie)
            intent.add_condition(tie.alive)
            return tie
        meta = intent._meta
        last = self._last_tie
        if last is not None and last[0] is innermost and last[1] is meta:
            # Made in the same (nested) transaction as the previous intent, with the same
            # metadata: share its tie and its resulting metadata (both never change).
            intent._meta = last[3]
            return last[2]
        chain: list[SessionTransaction] = []
        node: SessionTransaction | None = innermost
        while node is not None:
            chain.append(node)
            node = node.parent
        tie = _Tie(tuple(chain), state)
        intent.add_condition(tie.alive)
        self._last_tie = (innermost, meta, tie, intent._meta)
        return tie

    def _tie_alive(self, tie: Any) -> bool:
        return tie is None or bool(tie.alive())

    def _where(self, tie: Any) -> str:
        if tie is None or tie.root is None:
            return OPEN  # no transaction yet: the insert begins (and belongs to) the next one
        if tie.root is self._session.get_transaction():
            return OPEN
        return COMMITTED  # (an intent whose transaction ended without committing is void: filtered out)

    # -- writing ---------------------------------------------------------------

    def _store_committing(self, root: SessionTransaction) -> None:
        """``before_commit`` of ``root``: write the rows of the intents made in it that this scope still holds."""
        if self._state > _EXITED:  # flushed or discarded
            return
        buffer = self._buffer
        pending = self._pending
        mine = []
        for intent in buffer:
            found = pending.get(id(intent))
            if found is not None and found[0] is intent and found[2] is not None and found[2].root is root:
                mine.append(intent)
        if not mine:
            return
        kept = self._judged_now(mine)
        if kept:
            rows, stored = self._rows(kept)
            self._insert(rows)
            self._stored.extend(stored)
        taken = {id(i) for i in mine}
        buffer[:] = [i for i in buffer if id(i) not in taken]
        captured = self._captured
        if captured:
            for key in taken:
                captured.pop(key, None)
        self._forget(mine)

    def _statements(self, rows: list[Row], connection: Connection) -> list[tuple[Any, Any, bool]]:
        """``(statement, parameters, is driver SQL)`` to run, in order, for one flush on ``connection``."""
        table = self._table
        dialect = connection.dialect
        statements: list[tuple[Any, Any, bool]] = []
        keys = ordering_keys(rows)
        if keys:
            # Lock each key until this transaction ends.
            # One execution per key: some drivers' executemany (PyMySQL's) rewrites an
            # INSERT ... ON DUPLICATE KEY UPDATE and loses the update's own parameter.
            upsert = _upsert_keys(keys_table(table), dialect.name)
            statements += [(upsert, {"ordering_key": k}, False) for k in keys]
        created = utcnow()
        if dialect.paramstyle not in ("qmark", "format", "pyformat"):  # pragma: no cover - e.g. asyncpg
            statements.append((insert(table), as_dicts(rows, created), False))
            if dialect.name == "postgresql":
                statements.append((text("SELECT pg_notify(:channel, '')"), {"channel": table.name}, False))
            return statements
        preparer = dialect.identifier_preparer
        columns = [preparer.quote(c) for c in COLUMNS]
        # The table as an execution would name it: through the connection's schema_translate_map
        # (a schema per tenant), which driver SQL does not go through.
        schema = connection.schema_for_object(table)
        name = preparer.quote(table.name)
        if schema:
            name = f"{preparer.quote_schema(schema)}.{name}"
        to_db = table.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        if to_db is not None:
            created = to_db(created)
        if dialect.name == "postgresql":
            sql, params = postgres_insert(name, columns, rows, created, table.name)
            statements.append((sql, params, True))
        else:
            mark = "?" if dialect.paramstyle == "qmark" else "%s"
            statements += [
                (sql, params, True) for sql, params in multirow_inserts(name, columns, mark, rows, created)
            ]
        return statements

    def _insert(self, rows: list[Row]) -> None:
        # Also called from before_commit, which an AsyncSession runs inside its own greenlet.
        # The connection of the outbox table's bind: a session may bind tables to engines
        # (binds=...) and have no default one. The key locks live next to the table.
        connection = self._session.connection(bind_arguments={"clause": self._table})
        for statement, params, driver_sql in self._statements(rows, connection):
            if driver_sql:
                connection.exec_driver_sql(statement, params)
            else:
                connection.execute(statement, params)

    async def _ainsert(self, rows: list[Row]) -> None:
        session = self._async_session
        if session is None:
            self._insert(rows)
            return
        connection = await session.connection(bind_arguments={"clause": self._table})
        sync = connection.sync_connection
        if sync is None:  # pragma: no cover - an AsyncConnection a session hands out is started
            raise UsageError("the AsyncSession gave the outbox a connection that is not started")
        for statement, params, driver_sql in self._statements(rows, sync):
            if driver_sql:
                await connection.exec_driver_sql(statement, params)
            else:
                await connection.execute(statement, params)

    def _dispatch_all(self, intents: list[Intent]) -> None:
        if self._async_session is not None:
            raise UsageError(
                "an OutboxScope on an AsyncSession writes its rows asynchronously: "
                "use 'async with airlock.scope(...)'"
            )
        super()._dispatch_all(intents)


def _upsert_keys(keys: Table, dialect: str) -> Any:
    """``INSERT ... ON CONFLICT/DUPLICATE KEY UPDATE writes = writes + 1``: takes each key's row lock."""
    if dialect == "postgresql":
        pg = postgresql.insert(keys)
        return pg.on_conflict_do_update(index_elements=["ordering_key"], set_={"writes": keys.c.writes + 1})
    if dialect in ("mysql", "mariadb"):
        my = mysql.insert(keys)
        return my.on_duplicate_key_update(writes=keys.c.writes + 1)
    if dialect == "sqlite":
        lite = sqlite.insert(keys)
        return lite.on_conflict_do_update(index_elements=["ordering_key"], set_={"writes": keys.c.writes + 1})
    raise UsageError(
        f"ordering keys are not supported on {dialect!r} (PostgreSQL, MySQL/MariaDB and SQLite are)"
    )
