"""``DjangoScope``: effects escape only once the database transaction commits.

Two things tie a scope to Django's transactions:

* **Dispatch waits for the commit.** When the scope flushes inside an
  ``atomic()`` block of its database (``using``), the whole flush is handed to
  ONE ``transaction.on_commit`` callback; a rollback drops it with the data.
  Outside a transaction it dispatches at once, as ``on_commit`` would.
* **Intents are transaction-exact.** An intent enqueued inside an ``atomic()``
  block (or savepoint) that later rolls back never dispatches, even when the
  scope itself lives outside that block and flushes normally. At enqueue time
  the intent is tied to a *marker*: a no-op ``on_commit`` callback registered
  once per transaction and savepoint level (not once per intent). Django drops
  the callbacks of a rolled-back savepoint or transaction and calls them on
  commit, so at flush the marker answers the only question that matters: is
  the block the intent was made in still pending, or committed (alive), or
  rolled back (void)?
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from airlock import Intent, PolicyProtocol, Scope, UsageError

__all__ = ["DjangoScope"]


class _CommitMarker:
    """A no-op on-commit callback whose fate tells whether its block survived."""

    __slots__ = ("connection", "fired")

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.fired = False

    def __call__(self) -> None:
        self.fired = True

    def alive(self) -> bool:
        """Committed, or still pending in an open transaction (not rolled back)."""
        if self.fired:
            return True
        return any(entry[1] is self for entry in self.connection.run_on_commit)


def _marker_for(connection: BaseDatabaseWrapper) -> _CommitMarker:
    """The marker of the connection's current transaction + savepoint level.

    Cached per level so that a thousand enqueues in one block register one
    callback. The cache is keyed on the identity of ``run_on_commit``: Django
    replaces that list whenever a transaction ends or a savepoint rolls back,
    which invalidates every cached marker exactly when it must be.
    """
    pending = connection.run_on_commit
    level = tuple(connection.savepoint_ids)
    cache: tuple[list[Any], dict[tuple[Any, ...], _CommitMarker]] | None = getattr(
        connection, "_airlock_markers", None
    )
    if cache is None or cache[0] is not pending:
        cache = (pending, {})
        connection._airlock_markers = cache
    marker = cache[1].get(level)
    if marker is None or marker.fired:  # a fired marker belongs to a committed transaction
        marker = _CommitMarker(connection)
        connection.on_commit(marker)
        cache[1][level] = marker
    return marker


def tie_to_transactions(intent: Intent) -> None:
    """Enqueue check: void ``intent`` if any atomic block it is made in rolls back.

    Every database connection of this context that is inside ``atomic()``
    counts, not only the scope's ``using``: an intent made inside a block that
    rolled back never happened, whichever database the block was on.
    """
    for connection in _open_connections():
        if connection.in_atomic_block:
            intent.add_condition(_marker_for(connection).alive)


def _open_connections() -> list[BaseDatabaseWrapper]:
    """The connections this thread or context has created.

    The same as ``connections.all(initialized_only=True)``.

    This runs on every enqueue; reading the per-thread store directly costs
    half as much as the public call, which looks every alias up twice.
    """
    local = getattr(connections, "_connections", None)
    if local is None:  # pragma: no cover - a Django without the store we know
        return list(connections.all(initialized_only=True))
    found = []
    for alias in connections.settings:
        connection = getattr(local, alias, None)
        if connection is not None:
            found.append(connection)
    return found


class DjangoScope(Scope):
    """A scope whose effects escape only after the database commits.

    ``using`` names the database alias whose transaction the dispatch waits
    for (default ``"default"``; set a project-wide default with
    ``AIRLOCK = {"SCOPE_KWARGS": {"using": ...}}``). Other arguments are those
    of :class:`airlock.Scope`.
    """

    __slots__ = ("_using",)

    def __init__(
        self,
        policy: PolicyProtocol | None = None,
        *,
        executor: Callable[[Intent], Any] | None = None,
        origin: str | None = None,
        using: str | None = None,
    ) -> None:
        if using is None:
            using = DEFAULT_DB_ALIAS
        elif not isinstance(using, str) or using not in connections.settings:
            raise ValueError(
                f"{type(self).__name__}(using={using!r}): not a database alias; "
                f"DATABASES defines: {', '.join(connections.settings)}"
            )
        self._using = using
        super().__init__(policy, executor=executor, origin=origin)

    @property
    def using(self) -> str:
        """The database alias whose commit the dispatch waits for."""
        return self._using

    def enqueue_checks(self) -> Iterable[Callable[[Intent], None]]:
        yield from super().enqueue_checks()
        # A module-level function, so nested DjangoScopes share (and dedupe) it.
        yield tie_to_transactions

    def _dispatch_all(self, intents: list[Intent]) -> None:
        connection = connections[self._using]
        if not connection.in_atomic_block:
            if connection.connection is not None and not connection.autocommit:
                raise UsageError(
                    f"{type(self).__name__} cannot tell when to dispatch {len(intents)} intent(s): "
                    f"database {self._using!r} is in manual transaction management (autocommit off, "
                    "no atomic block); flush inside transaction.atomic() or with autocommit on"
                )
            super()._dispatch_all(intents)  # autocommit: nothing to wait for
            return
        dispatch_now = super()._dispatch_all

        # A plain function (not a partial): Django's robust-callback logging
        # reads ``__qualname__``.
        def airlock_dispatch_after_commit() -> None:
            dispatch_now(intents)

        # robust: a failed dispatch is logged (by airlock, with each intent,
        # then by Django) instead of stopping the other on-commit callbacks of
        # a transaction that has already committed.
        transaction.on_commit(airlock_dispatch_after_commit, using=self._using, robust=True)

    async def _adispatch_all(self, intents: list[Intent]) -> None:
        # Only attributes are read here, never a database call, so the event
        # loop is not blocked and there is no thread hop. Django gives async
        # code its own connections and never runs it inside atomic() (that
        # needs a sync thread), so an async flush has no transaction to wait for.
        connection = connections[self._using]
        if connection.in_atomic_block:
            # Only reachable with DJANGO_ALLOW_ASYNC_UNSAFE: the commit would
            # happen in this very loop, where the dispatch could not be awaited.
            raise UsageError(
                f"{type(self).__name__} cannot await {len(intents)} intent(s) after the commit: it flushed "
                f"asynchronously inside transaction.atomic() on database {self._using!r}; "
                "exit the scope after the atomic block, or flush it from sync code"
            )
        await super()._adispatch_all(intents)
