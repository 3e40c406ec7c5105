"""SQLAlchemy: scopes whose effects follow the transaction they were made in.

``airlock.scope(_cls=SQLAlchemyScope, session=session)`` (or
``@airlock.scoped(_cls=SQLAlchemyScope, session=...)``) is a scope tied to a
`Session`; [`AsyncSQLAlchemyScope`][airlock.integrations.sqlalchemy.AsyncSQLAlchemyScope] is the same for
an `AsyncSession` (``async with`` only).

The rule (SPEC §5.1, §5.5): every intent enqueued in such a scope (or in a
scope nested in it) is tied, *at enqueue*, to the session's transaction in
progress, or, when the session has none, to the next one begun on it. It is
dispatched only after THAT transaction commits, and never if it rolls back,
whatever transaction happens to be open when the scope flushes (a lazy load
after ``commit()`` opens a read transaction; it changes nothing). A savepoint
(``begin_nested()``) that rolls back voids the intents made inside it.

A session joined to an external connection transaction (the usual test
fixture, any ``join_transaction_mode``) commits nothing by itself: the intents
then wait for the outermost connection-level transaction, dispatched after it
commits, dropped when it rolls back.

Everything is driven by SQLAlchemy's own events (session, connection and pool
events); nothing is patched. One tracker per session follows its
transactions, for ``Session`` and ``AsyncSession`` (through its
``sync_session``) alike.
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from ._extras import requires

with requires("sqlalchemy"):
    from sqlalchemy import event
    from sqlalchemy.engine import Connection
    from sqlalchemy.exc import MissingGreenlet
    from sqlalchemy.orm import Session, SessionTransaction, scoped_session

# AsyncSession needs greenlet, which SQLAlchemy >= 2.1 no longer installs: sync use works without it.
try:
    from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session
except ImportError:  # no sqlalchemy[asyncio]: no session is an AsyncSession, no commit runs in a greenlet
    AsyncSession = async_scoped_session = type("AsyncSession", (), {})  # type: ignore[misc,assignment]

    def _await(awaitable: Any) -> Any:
        raise MissingGreenlet("greenlet is not installed")
else:
    try:  # SQLAlchemy >= 2.1
        from sqlalchemy.util import await_ as _await
    except ImportError:  # pragma: no cover - SQLAlchemy 2.0
        from sqlalchemy.util import await_only as _await

from airlock._errors import DispatchError, UsageError
from airlock._intent import Intent
from airlock._policies import PolicyProtocol
from airlock._scope import Scope

__all__ = ["AsyncSQLAlchemyScope", "SQLAlchemyScope", "transaction_check"]

logger = logging.getLogger("airlock")

_PENDING, _COMMITTED, _DROPPED = 0, 1, 2


class _Unfinished:
    """How many intents wait for a session's transactions (read when the session is collected)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def report(self) -> None:
        if self.count:
            logger.warning(
                "airlock: %d intent(s) were waiting for a transaction of a session that is gone "
                "(it never committed nor closed); they were not dispatched",
                self.count,
            )


class _Tie:
    """The fate of one outermost transaction, shared by every intent made in it.

    It is also the condition attached to those intents (``Intent.add_condition``):
    an intent whose transaction was dropped is void for every scope.
    """

    __slots__ = ("state", "unfinished", "waiting")

    def __init__(self, unfinished: _Unfinished) -> None:
        self.state = _PENDING
        # (scope, intents, asynchronous): flushed batches waiting for the commit
        self.waiting: list[tuple[SQLAlchemyScope, list[Intent], bool]] = []
        self.unfinished = unfinished

    def __call__(self) -> bool:
        return self.state != _DROPPED

    def wait(self, scope: SQLAlchemyScope, intents: list[Intent], asynchronous: bool) -> None:
        self.waiting.append((scope, intents, asynchronous))
        self.unfinished.count += len(intents)

    def _take(self) -> list[tuple[SQLAlchemyScope, list[Intent], bool]]:
        waiting, self.waiting = self.waiting, []
        self.unfinished.count -= sum(len(intents) for _, intents, _ in waiting)
        return waiting

    def leave_session(self) -> None:
        """The tie now waits on a connection, not on its session: the session's report forgets it."""
        waiting = self._take()
        self.unfinished = _Unfinished()
        self.waiting = waiting

    def commit(self) -> None:
        """The transaction committed (at the database): run what waited for it."""
        self.state = _COMMITTED
        waiting = self._take()
        errors: list[DispatchError] = []
        for scope, intents, asynchronous in waiting:
            try:
                scope._dispatch_committed(intents, asynchronous)
            except DispatchError as exc:
                errors.append(exc)
        _raise_together(errors)

    def drop(self) -> None:
        """The transaction rolled back (or was closed without commit): its intents never happened."""
        self.state = _DROPPED
        waiting = self._take()
        if waiting and logger.isEnabledFor(logging.DEBUG):
            dropped = sum(len(intents) for _, intents, _ in waiting)
            logger.debug(
                "airlock: transaction rolled back; dropped %d intent(s) waiting for its commit", dropped
            )


def _raise_together(errors: list[DispatchError]) -> None:
    """Several scopes' batches ran after one commit: one DispatchError for all their failures."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        failures = [failure for exc in errors for failure in exc.failures]
        names = ", ".join(intent.name for intent, _ in failures)
        raise DispatchError(f"{len(failures)} intent(s) failed to dispatch after commit: {names}", failures)


def _pending_tie(intent: Intent) -> _Tie | None:
    meta = intent._meta
    if meta is not None:
        for condition in meta.conditions:
            if type(condition) is _Tie and condition.state == _PENDING:
                return condition
    return None


class _Outcome:
    """What became of one savepoint, as far as the intents made inside it care."""

    __slots__ = ("committed", "void")

    def __init__(self) -> None:
        self.committed = False
        self.void = False


def _no_savepoint_void(outcomes: tuple[_Outcome, ...]) -> bool:
    return not any(outcome.void for outcome in outcomes)


class _SessionTracker:
    """Follows one session's transactions through its events (one per session, in ``session.info``)."""

    def __init__(self, session: Session) -> None:
        self._session = weakref.ref(session)
        self.ties: dict[SessionTransaction, _Tie] = {}  # root transactions that intents were made in
        self.next_tie: _Tie | None = None  # for intents made while the session had no transaction
        self.savepoints: dict[SessionTransaction, _Outcome] = {}
        self.connections: dict[SessionTransaction, list[Connection]] = {}
        self.committed_root: SessionTransaction | None = None
        self.unfinished = _Unfinished()

    # -- at enqueue ---------------------------------------------------------------

    def tie(self, intent: Intent) -> None:
        """The enqueue check: tie ``intent`` to the transaction it is made in (or the next one)."""
        session = self._session()
        if session is None:  # pragma: no cover - the scope holds the session
            return
        root = session.get_transaction()
        if root is None:
            tie = self.next_tie
            if tie is None:
                tie = self.next_tie = _Tie(self.unfinished)
        else:
            tie = self.ties.get(root)
            if tie is None:
                tie = self.ties[root] = _Tie(self.unfinished)
        intent.add_condition(tie)
        outcomes = []
        transaction = session.get_nested_transaction()
        while transaction is not None and transaction.parent is not None:
            # Flush sub-transactions are not boundaries: their fate is their parent's.
            if transaction.nested:
                outcome = self.savepoints.get(transaction)
                if outcome is None:
                    outcome = self.savepoints[transaction] = _Outcome()
                outcomes.append(outcome)
            transaction = transaction.parent
        if outcomes:
            intent.add_condition(functools.partial(_no_savepoint_void, tuple(outcomes)))

    # -- session events -----------------------------------------------------------

    def after_transaction_create(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None and self.next_tie is not None:
            self.ties[transaction], self.next_tie = self.next_tie, None

    def after_begin(self, session: Session, transaction: SessionTransaction, connection: Connection) -> None:
        if transaction.parent is None:
            self.connections.setdefault(transaction, []).append(connection)

    def after_commit(self, session: Session) -> None:
        # Fired for the root transaction and for each released savepoint, while
        # the committing transaction is still the innermost one.
        nested = session.get_nested_transaction()
        if nested is not None:
            outcome = self.savepoints.get(nested)
            if outcome is not None:
                outcome.committed = True
        else:
            self.committed_root = session.get_transaction()

    def after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is not None:
            outcome = self.savepoints.pop(transaction, None)
            if outcome is not None and not outcome.committed:
                outcome.void = True
            return
        committed = self.committed_root is transaction
        self.committed_root = None
        connections = self.connections.pop(transaction, ())
        tie = self.ties.pop(transaction, None)
        if tie is None:
            return
        if not committed:
            tie.drop()
            return
        # A session joined to an external transaction has only released a
        # savepoint or left the connection's transaction open: the data commits
        # (or not) with that transaction.
        # (A transaction that ran no statement has no connection: the bound one counts.)
        if isinstance(session.bind, Connection) and session.bind not in connections:
            connections = [*connections, session.bind]
        outer = [c for c in connections if not c.closed and c.in_transaction()]
        if outer:
            tie.leave_session()
            for connection in outer:
                _ExternalTransaction.follow(connection, tie)
        else:
            tie.commit()


_TRACKER_KEY = "airlock.tracker"


def _tracker_for(session: Session) -> _SessionTracker:
    # Kept in ``session.info`` so that it lives exactly as long as the session.
    tracker: _SessionTracker | None = session.info.get(_TRACKER_KEY)
    if tracker is None:
        tracker = session.info[_TRACKER_KEY] = _SessionTracker(session)
        for name in ("after_transaction_create", "after_begin", "after_commit", "after_transaction_end"):
            event.listen(session, name, getattr(tracker, name))
        # Holds only the counter, never the session or its intents.
        weakref.finalize(session, tracker.unfinished.report)
    return tracker


def transaction_check(session: Session) -> Callable[[Intent], None]:
    """The enqueue check that ties intents to ``session``'s transactions.

    Any scope built on a SQLAlchemy ``Session`` (this module's scopes, the
    outbox) yields it from ``enqueue_checks()`` so that one tracker per session
    decides what became of the transaction an intent was made in. Checks from
    scopes on the same session are the same bound method, so nested scopes run
    it once.
    """
    return _tracker_for(session).tie


# -- external connection transactions -------------------------------------------------------

_EXTERNAL_KEY = "airlock.external_transaction"


class _ExternalTransaction:
    """The outermost transaction of a connection a session joined; ties wait for it.

    Connection events fire *before* the DBAPI call, so a COMMIT is only known
    to have succeeded at the connection's next transaction or when it goes back
    to the pool; a COMMIT that fails (``handle_error``) drops the ties.
    """

    __slots__ = ("committing", "savepoint", "ties")

    def __init__(self, savepoint: object) -> None:
        self.ties: list[_Tie] = []
        self.committing = False
        self.savepoint = savepoint  # the connection-level savepoint the session's work lives in, if any

    @classmethod
    def follow(cls, connection: Connection, tie: _Tie) -> None:
        info = connection.info  # the pooled connection's: it survives Connection objects
        watch: _ExternalTransaction | None = info.get(_EXTERNAL_KEY)
        if watch is None:
            watch = info[_EXTERNAL_KEY] = cls(connection.get_nested_transaction())
        if tie not in watch.ties:
            watch.ties.append(tie)
        for name, listener in _CONNECTION_LISTENERS.items():
            if not event.contains(connection, name, listener):
                event.listen(connection, name, listener)
        # Pool and dialect events can only be listened to for the whole engine;
        # the listeners do nothing for connections that no session waits for.
        for name, listener in _ENGINE_LISTENERS.items():
            if not event.contains(connection.engine, name, listener):
                event.listen(connection.engine, name, listener)

    def finish(self, committed: bool) -> None:
        errors: list[DispatchError] = []
        for tie in self.ties:
            if not committed:
                tie.drop()
                continue
            try:
                tie.commit()
            except DispatchError as exc:
                errors.append(exc)
        _raise_together(errors)


def _watch(connection: Connection, pop: bool = False) -> _ExternalTransaction | None:
    info = connection.info
    return info.pop(_EXTERNAL_KEY, None) if pop else info.get(_EXTERNAL_KEY)


def _on_commit(connection: Connection) -> None:
    watch = _watch(connection)
    if watch is not None:
        watch.committing = True


def _on_rollback(connection: Connection) -> None:
    watch = _watch(connection, pop=True)
    if watch is not None:
        watch.finish(committed=False)


def _on_rollback_savepoint(connection: Connection, name: str, context: object) -> None:
    watch = _watch(connection)
    if watch is None or watch.savepoint is None:
        return
    if connection.get_nested_transaction() is watch.savepoint:  # the savepoint the session's work is in
        _watch(connection, pop=True)
        watch.finish(committed=False)


def _on_release_savepoint(connection: Connection, name: str, context: object) -> None:
    watch = _watch(connection)
    if watch is not None and connection.get_nested_transaction() is watch.savepoint:
        watch.savepoint = None  # released into the enclosing transaction, which now decides


def _on_begin(connection: Connection) -> None:
    # A new transaction: the previous one has ended, so its COMMIT went through.
    watch = _watch(connection)
    if watch is not None and watch.committing:
        _watch(connection, pop=True)
        watch.finish(committed=True)


def _on_error(context: Any) -> None:
    connection = context.connection
    watch = None if connection is None else _watch(connection)
    if watch is not None and watch.committing:
        _watch(connection, pop=True)
        watch.finish(committed=False)  # the COMMIT itself failed


def _on_checkin(dbapi_connection: object, record: Any) -> None:
    watch = None if record is None else record.info.pop(_EXTERNAL_KEY, None)
    if watch is not None:
        watch.finish(committed=watch.committing)


_CONNECTION_LISTENERS: dict[str, Callable[..., None]] = {
    "commit": _on_commit,
    "rollback": _on_rollback,
    "rollback_savepoint": _on_rollback_savepoint,
    "release_savepoint": _on_release_savepoint,
    "begin": _on_begin,
}
_ENGINE_LISTENERS: dict[str, Callable[..., None]] = {"handle_error": _on_error, "checkin": _on_checkin}


# -- the scopes -------------------------------------------------------------------------------


class SQLAlchemyScope(Scope):
    """A scope whose intents wait for the commit of the transaction they were made in.

    ``session`` is a `Session` (a ``scoped_session``
    is resolved to its current session when the scope is created). At flush,
    intents whose transaction has committed run at once; those whose
    transaction is still open (or, for intents made outside any, not begun
    yet) run right after it commits, in FIFO order, and are dropped if it rolls
    back. Intents enqueued inside a savepoint that rolls back are void wherever
    they end up.

    A dispatch failure after commit is raised from ``session.commit()`` as
    [`airlock.DispatchError`][airlock.DispatchError] (the data is committed; every intent was
    attempted and each failure logged).
    """

    __slots__ = ("_session", "_tracker")

    def __init__(
        self,
        policy: PolicyProtocol | None = None,
        *,
        session: Any,
        executor: Callable[[Intent], Any] | None = None,
        origin: str | None = None,
    ) -> None:
        self._session = self._sync_session(session)
        self._tracker = _tracker_for(self._session)
        super().__init__(policy, executor=executor, origin=origin)

    @property
    def session(self) -> Any:
        """The session this scope follows."""
        return self._session

    @classmethod
    def _sync_session(cls, session: object) -> Session:
        if isinstance(session, scoped_session):
            session = session()
        if isinstance(session, (AsyncSession, async_scoped_session)):
            raise TypeError(
                f"{cls.__name__}(session=...) got an AsyncSession; use AsyncSQLAlchemyScope "
                "with 'async with' for async sessions"
            )
        if not isinstance(session, Session):
            raise TypeError(f"{cls.__name__}(session=...) needs a sqlalchemy.orm.Session, got {session!r}")
        return session

    def enqueue_checks(self) -> Iterable[Callable[[Intent], None]]:
        yield from super().enqueue_checks()
        yield transaction_check(self._session)

    def _hold_pending(self, intents: list[Intent], asynchronous: bool) -> list[Intent]:
        """Hand intents whose transaction has not committed yet to it; return the rest."""
        now: list[Intent] = []
        waiting: dict[_Tie, list[Intent]] = {}
        for intent in intents:
            tie = _pending_tie(intent)
            if tie is None:
                now.append(intent)
            else:
                waiting.setdefault(tie, []).append(intent)
        for tie, group in waiting.items():
            tie.wait(self, group, asynchronous)
        return now

    def _dispatch_all(self, intents: list[Intent]) -> None:
        now = self._hold_pending(intents, asynchronous=False)
        if now:
            super()._dispatch_all(now)

    async def _adispatch_all(self, intents: list[Intent]) -> None:
        now = self._hold_pending(intents, asynchronous=True)
        if now:
            await super()._adispatch_all(now)

    def _dispatch_committed(self, intents: list[Intent], asynchronous: bool) -> None:
        """Run ``intents`` now that their transaction committed (called from SQLAlchemy's events)."""
        live = [intent for intent in intents if not intent._is_void()]
        now = self._hold_pending(live, asynchronous)  # an intent tied to two sessions waits for both
        if not now:
            return
        if asynchronous:
            # AsyncSession runs commit() in a greenlet; awaiting from here hands
            # the coroutine to the event loop driving it.
            dispatch: Coroutine[Any, Any, None] = Scope._adispatch_all(self, now)
            try:
                _await(dispatch)
                return
            except MissingGreenlet:
                dispatch.close()  # committed synchronously: run what can run synchronously
        Scope._dispatch_all(self, now)


class AsyncSQLAlchemyScope(SQLAlchemyScope):
    """[`SQLAlchemyScope`][airlock.integrations.sqlalchemy.SQLAlchemyScope] for an `AsyncSession`.

    Use it with ``async with`` (or on an ``async def`` with
    ``@airlock.scoped``). Coroutine tasks are awaited after ``await
    session.commit()`` has committed and before it returns.
    """

    __slots__ = ("_async_session",)

    def __init__(
        self,
        policy: PolicyProtocol | None = None,
        *,
        session: Any,
        executor: Callable[[Intent], Any] | None = None,
        origin: str | None = None,
    ) -> None:
        if isinstance(session, async_scoped_session):
            session = session()
        if not isinstance(session, AsyncSession):
            raise TypeError(
                "AsyncSQLAlchemyScope(session=...) needs a sqlalchemy.ext.asyncio.AsyncSession, "
                f"got {session!r}"
                + ("; use SQLAlchemyScope for a sync Session" if isinstance(session, Session) else "")
            )
        self._async_session = session
        super().__init__(policy, session=session.sync_session, executor=executor, origin=origin)

    @property
    def session(self) -> Any:
        return self._async_session

    def __enter__(self) -> Scope:
        raise UsageError("AsyncSQLAlchemyScope flushes asynchronously: use 'async with', not 'with'")

    def _dispatch_all(self, intents: list[Intent]) -> None:
        raise UsageError(
            "AsyncSQLAlchemyScope flushes asynchronously: use 'await scope.aflush()', not flush()"
        )
