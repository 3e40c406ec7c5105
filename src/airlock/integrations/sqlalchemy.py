"""SQLAlchemy: scopes whose dispatch waits for a session's commit.

``airlock.scope(_cls=SQLAlchemyScope, session=session)`` (or
``@airlock.scoped(_cls=SQLAlchemyScope, session=...)``) is a scope tied to a
:class:`~sqlalchemy.orm.Session`; :class:`AsyncSQLAlchemyScope` is the same for
an :class:`~sqlalchemy.ext.asyncio.AsyncSession` (``async with`` only).

When such a scope flushes while the session is in a transaction, the allowed
intents wait for that transaction: they dispatch right after it commits and
are dropped if it rolls back (or the session closes without committing).
Outside a transaction they dispatch at once.

It is transaction-exact: every intent enqueued while the session is inside a
transaction remembers the savepoints (``begin_nested()``) around it. If one of
them rolls back, the intent is void and no scope ever dispatches it, even one
that flushes after the rollback.

Everything is driven by the session's own events (``after_commit``,
``after_transaction_end``); nothing is patched.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from ._extras import requires

with requires("sqlalchemy"):
    from sqlalchemy import event
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

__all__ = ["AsyncSQLAlchemyScope", "SQLAlchemyScope"]

logger = logging.getLogger("airlock")


class _Outcome:
    """What became of one root or savepoint transaction, as far as intents care."""

    __slots__ = ("committed", "void")

    def __init__(self) -> None:
        self.committed = False
        self.void = False  # ended without committing: rolled back, or closed


def _none_void(outcomes: tuple[_Outcome, ...]) -> bool:
    return not any(outcome.void for outcome in outcomes)


class _Batch:
    __slots__ = ("asynchronous", "intents", "scope")

    def __init__(self, scope: SQLAlchemyScope, intents: list[Intent], asynchronous: bool) -> None:
        self.scope = scope
        self.intents = intents
        self.asynchronous = asynchronous


class _SessionTracker:
    """Follows one Session's transactions through its events (one per session)."""

    def __init__(self) -> None:
        # Only root and savepoint transactions that an intent or a commit
        # touched have an entry; it is removed when the transaction ends.
        self.outcomes: dict[SessionTransaction, _Outcome] = {}
        self.pending: dict[SessionTransaction, list[_Batch]] = {}

    def outcome(self, transaction: SessionTransaction) -> _Outcome:
        outcome = self.outcomes.get(transaction)
        if outcome is None:
            outcome = self.outcomes[transaction] = _Outcome()
        return outcome

    def condition_for(self, session: Session) -> Callable[[], bool] | None:
        """A condition that holds while no transaction around the current point has rolled back."""
        transaction = session.get_nested_transaction() or session.get_transaction()
        outcomes = []
        while transaction is not None:
            # Flush sub-transactions are not boundaries: their fate is their parent's.
            if transaction.nested or transaction.parent is None:
                outcomes.append(self.outcome(transaction))
            transaction = transaction.parent
        if not outcomes:
            return None
        return functools.partial(_none_void, tuple(outcomes))

    # -- session events ---------------------------------------------------------

    def after_commit(self, session: Session) -> None:
        # Fired for the root transaction and for each released savepoint, while
        # the committing transaction is still the innermost one.
        transaction = session.get_nested_transaction() or session.get_transaction()
        if transaction is not None:
            self.outcome(transaction).committed = True

    def after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        outcome = self.outcomes.pop(transaction, None)
        committed = outcome is not None and outcome.committed
        if outcome is not None and not committed:
            outcome.void = True
        if transaction.parent is not None:
            return
        batches = self.pending.pop(transaction, None)
        if not batches:
            return
        if committed:
            self._dispatch(batches)
        elif logger.isEnabledFor(logging.DEBUG):
            dropped = sum(len(batch.intents) for batch in batches)
            logger.debug(
                "airlock: transaction rolled back; dropped %d intent(s) waiting for its commit", dropped
            )

    def _dispatch(self, batches: list[_Batch]) -> None:
        errors: list[DispatchError] = []
        for batch in batches:
            live = [intent for intent in batch.intents if not intent._is_void()]
            if not live:
                continue
            try:
                batch.scope._dispatch_committed(live, batch.asynchronous)
            except DispatchError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            failures = [failure for exc in errors for failure in exc.failures]
            names = ", ".join(intent.name for intent, _ in failures)
            raise DispatchError(
                f"{len(failures)} intent(s) failed to dispatch after commit: {names}", failures
            )


_TRACKER_KEY = "airlock.tracker"


def _tracker_for(session: Session) -> _SessionTracker:
    # Kept in ``session.info`` so that it lives exactly as long as the session.
    tracker: _SessionTracker | None = session.info.get(_TRACKER_KEY)
    if tracker is None:
        tracker = session.info[_TRACKER_KEY] = _SessionTracker()
        event.listen(session, "after_commit", tracker.after_commit)
        event.listen(session, "after_transaction_end", tracker.after_transaction_end)
    return tracker


class SQLAlchemyScope(Scope):
    """A scope whose dispatch waits for ``session``'s transaction to commit.

    ``session`` is a :class:`~sqlalchemy.orm.Session` (a ``scoped_session``
    is resolved to its current session when the scope is created). Flushing
    while the session is in a transaction hands the allowed intents to that
    transaction: they run right after its commit, in FIFO order, and are
    dropped if it rolls back. Flushing outside a transaction dispatches at once.
    Intents enqueued inside a savepoint that rolls back are void wherever they
    end up.

    A dispatch failure after commit is raised from ``session.commit()`` as
    :class:`airlock.DispatchError` (the data is committed; every intent was
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
        # Set before Scope.__init__, which collects enqueue_checks().
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
        yield self._tie_to_transaction

    def _tie_to_transaction(self, intent: Intent) -> None:
        # Runs for every intent enqueued in this scope or one nested in it.
        if self._session.in_transaction():
            condition = self._tracker.condition_for(self._session)
            if condition is not None:
                intent.add_condition(condition)

    def _defer(self, intents: list[Intent], asynchronous: bool) -> bool:
        root = self._session.get_transaction()
        if root is None:
            return False
        self._tracker.pending.setdefault(root, []).append(_Batch(self, intents, asynchronous))
        return True

    def _dispatch_all(self, intents: list[Intent]) -> None:
        if not self._defer(intents, asynchronous=False):
            super()._dispatch_all(intents)

    async def _adispatch_all(self, intents: list[Intent]) -> None:
        if not self._defer(intents, asynchronous=True):
            await super()._adispatch_all(intents)

    def _dispatch_committed(self, intents: list[Intent], asynchronous: bool) -> None:
        """Run ``intents`` now that the transaction has committed (called from the session event)."""
        if asynchronous:
            # AsyncSession runs commit() in a greenlet; awaiting from here hands
            # the coroutine to the event loop driving it.
            dispatch: Coroutine[Any, Any, None] = Scope._adispatch_all(self, intents)
            try:
                _await(dispatch)
                return
            except MissingGreenlet:
                dispatch.close()  # committed synchronously: run what can run synchronously
        Scope._dispatch_all(self, intents)


class AsyncSQLAlchemyScope(SQLAlchemyScope):
    """:class:`SQLAlchemyScope` for an :class:`~sqlalchemy.ext.asyncio.AsyncSession`.

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
