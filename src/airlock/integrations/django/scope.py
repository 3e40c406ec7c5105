"""``DjangoScope``: effects escape only once the database transaction commits.

Three things tie a scope to Django's transactions:

* **Dispatch waits for the commit** ([`DjangoScope.schedule_dispatch()`][airlock.integrations.django.scope.DjangoScope.schedule_dispatch]).
  When the scope flushes while any database connection of this thread is
  inside ``atomic()`` (whatever alias ``using`` names), the whole flush is one
  ``transaction.on_commit`` callback; a rollback drops it with the data. With
  several databases in open blocks, it waits for each of them. Outside a
  transaction it dispatches at once, as ``on_commit`` would.
* **Intents are transaction-exact.** An intent enqueued inside an ``atomic()``
  block (or savepoint) that later rolls back never dispatches, even when the
  scope itself lives outside that block and flushes normally. At enqueue time
  the intent is tied to a *marker*: a no-op ``on_commit`` callback registered
  once per transaction and savepoint level (not once per intent). Django drops
  the callbacks of a rolled-back savepoint or transaction and calls them on
  commit, so at flush the marker answers the only question that matters: is
  the block the intent was made in still pending or committed (alive), or
  rolled back (void)? When the flush itself has to wait for a commit, it rides
  on such a marker when one is pending at its level, so Django's
  ``captureOnCommitCallbacks`` sees one callback per flushing scope.
* **Under ASGI the flush runs where the transaction is.** Django runs sync
  code (views, sync middleware, ``atomic()``) on one thread per request; an
  async flush of intents that need that thread (sync tasks, which may use the
  ORM, or anything made inside a transaction) hops there, so it sees the
  transaction a sync middleware opened around the async chain.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from airlock import Intent, PolicyProtocol, Scope, UsageError, get_current_scope
from airlock.integrations.executors.sync import sync_executor

from .conf import executor_when_unconfigured

__all__ = ["DjangoScope"]

_get_ident = threading.get_ident


class _Marker:
    """A transaction level's no-op on-commit callback; its fate tells whether the level survived.

    Once a flush has to wait for the same commit, the marker carries that
    flush too (`callback`), so it stays one registered callback.
    """

    __slots__ = ("connection", "level", "fired", "callback", "index")

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.level = tuple(connection.savepoint_ids)
        self.fired = False
        self.callback: Callable[[], None] | None = None
        # A bound method (Django's robust-callback logging reads ``__qualname__``),
        # recognised by its ``__self__`` (see alive). Neither it nor the list
        # it is in is kept on the marker: either would make a reference cycle
        # (marker -> list -> entry -> method -> marker) left to the garbage collector.
        connection.on_commit(self.airlock_after_commit, robust=True)
        self.index = len(connection.run_on_commit) - 1

    def airlock_after_commit(self) -> None:
        self.fired = True
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()

    def alive(self) -> bool:
        """Committed, or still pending in an open transaction (not rolled back)."""
        if self.fired:
            return True
        pending = self.connection.run_on_commit
        index = self.index
        if index < len(pending) and getattr(pending[index][1], "__self__", None) is self:
            return True  # the usual case: still where it was registered
        return any(getattr(entry[1], "__self__", None) is self for entry in pending)


def _markers(connection: BaseDatabaseWrapper) -> dict[str | None, _Marker]:
    """The connection's markers by level (the innermost savepoint id, ``None`` for the transaction).

    Kept on the connection and thrown away whenever Django replaces
    ``run_on_commit`` (a transaction ends, a savepoint rolls back), which is
    exactly when a cached marker may no longer stand for its level.
    """
    pending = connection.run_on_commit
    state: tuple[list[Any], dict[str | None, _Marker]] | None = getattr(connection, "_airlock_markers", None)
    if state is None or state[0] is not pending:
        state = (pending, {})
        connection._airlock_markers = state
    return state[1]


def _marker_for(connection: BaseDatabaseWrapper) -> _Marker:
    """The marker of the connection's current transaction + savepoint level (made once per level)."""
    ids = connection.savepoint_ids
    key = ids[-1] if ids else None  # savepoint ids are unique per connection
    markers = _markers(connection)
    marker = markers.get(key)
    if marker is None or marker.fired:
        marker = markers[key] = _Marker(connection)
    return marker


def _register(connection: BaseDatabaseWrapper, callback: Callable[[], None]) -> None:
    """``on_commit(callback, robust=True)``, riding on a pending marker of this level if there is one.

    A marker registered at this level, or in a savepoint since released into
    it, is dropped by exactly the rollbacks that would drop a new callback and
    runs at the same commit: carrying the callback adds nothing visible.
    """
    level = tuple(connection.savepoint_ids)
    depth = len(level)
    latest: _Marker | None = None  # the candidate registered last
    for m in _markers(connection).values():
        if (
            m.callback is None
            and not m.fired
            and m.level[:depth] == level
            and m.alive()
            and (latest is None or m.index > latest.index)
        ):
            latest = m
    if latest is not None:
        latest.callback = callback
    else:
        connection.on_commit(callback, robust=True)


class _TieToTransactions:
    """Enqueue check: void an intent if any ``atomic()`` block it is made in rolls back.

    Every connection of this thread counts, not only the scope's ``using``: an
    intent made inside a block that rolled back never happened, whichever
    database the block was on. The thread's connections are looked up once per
    scope and thread (Django's per-thread store is slow to read), not per intent.

    The check of a root [`DjangoScope`][airlock.integrations.django.scope.DjangoScope] entered inside ``atomic()`` knows
    that scope's entry levels: an intent made at one of them needs no
    condition (the flush registers at that level), and is only noted here
    (`noted`). One instance per scope (it lives and dies with it, and does not
    refer back to it: no reference cycle to leave to the garbage collector);
    equal to any other instance, so nested DjangoScopes run the check once.
    """

    __slots__ = ("thread", "wrappers", "last", "levels", "others", "entry", "noted", "markers")
    airlock_never_enqueues = True  # the core may run it without its policy-callback guard

    def __init__(self, at_entry: bool = False) -> None:
        self.thread = 0
        self.wrappers: tuple[BaseDatabaseWrapper, ...] = ()
        # (meta before, condition, meta after) of the last intent tied here: the
        # next intent made at the same level shares the result instead of
        # building its own (metadata is never mutated, only replaced).
        self.last: tuple[Any, Any, Any] = (None, None, None)
        self.levels: tuple[tuple[Any, Any, Any], ...] = ()  # (connection, savepoint id or None, pending list)
        self.others: tuple[BaseDatabaseWrapper, ...] = ()  # this thread's other connections
        self.entry: dict[int, tuple[Any, Any]] = {}
        self.noted: list[Intent] = []  # the intents made at the entry levels (left untied)
        self.markers: tuple[_Marker, ...] = ()  # those levels' markers, from the first noted intent on
        if at_entry:
            self.thread = _get_ident()
            self.wrappers = wrappers = _thread_connections()
            levels = []
            others = []
            entry = {}
            for c in wrappers:
                if c.in_atomic_block:
                    ids = c.savepoint_ids
                    key = ids[-1] if ids else None
                    pending = c.run_on_commit
                    levels.append((c, key, pending))
                    entry[id(c)] = (key, pending)
                else:
                    others.append(c)
            if levels:
                self.levels = tuple(levels)
                self.others = tuple(others)
                self.entry = entry

    def __eq__(self, other: object) -> bool:
        return type(other) is _TieToTransactions

    def __hash__(self) -> int:
        return hash(_TieToTransactions)

    def check(self, intent: Intent) -> None:
        """The check; a root scope's runs as this bound method (cheaper to call than the instance)."""
        levels = self.levels
        at_entry = False
        if levels and self.thread == _get_ident():
            # The lean path: still at the level the scope was entered at, on
            # every database, and no other block open?
            for connection, key, pending in levels:
                if connection.run_on_commit is not pending:
                    break
                ids = connection.savepoint_ids
                if (ids[-1] if ids else None) != key:
                    break
            else:
                others = self.others
                if not (others and any(c.in_atomic_block for c in others)):
                    noted = self.noted
                    if noted:
                        noted.append(intent)  # the usual case
                        return
                    at_entry = True  # the first: noted below
        if not at_entry:
            if self.thread != _get_ident():
                self.thread = _get_ident()
                self.wrappers = _thread_connections()
            entry = self.entry
            for connection in self.wrappers:
                if connection.in_atomic_block:
                    if entry:
                        level = entry.get(id(connection))
                        if level is not None and level[1] is connection.run_on_commit:
                            ids = connection.savepoint_ids
                            if (ids[-1] if ids else None) == level[0]:
                                at_entry = True
                                continue
                    alive = _marker_for(connection).alive
                    before, condition, after = self.last
                    meta = intent._meta
                    if meta is before and condition == alive:
                        intent._meta = after
                    else:
                        intent.add_condition(alive)
                        self.last = (meta, alive, intent._meta)
        if at_entry:
            noted = self.noted
            if not noted:
                # What the flush asks if the scope outlived its level (used
                # imperatively): did that level commit or roll back?
                markers = []
                for connection, _, _ in levels:
                    markers.append(_marker_for(connection))
                self.markers = tuple(markers)
            noted.append(intent)

    __call__ = check  # the same function: called as the instance (nested scopes), no extra frame


_TieToTransactions.check.airlock_never_enqueues = True  # type: ignore[attr-defined]  # read through the bound method


def _has_marker(intent: Intent) -> bool:
    """Whether the intent carries a transaction condition (a marker's)."""
    meta = intent._meta
    return meta is not None and any(
        getattr(c, "__self__", None).__class__ is _Marker for c in meta.conditions
    )


def _thread_connections() -> tuple[BaseDatabaseWrapper, ...]:
    """This thread's connection objects, one per alias (made if needed: cheap, no database call)."""
    found = []
    for alias in connections:  # (a loop: no generator frame; this runs once per scope)
        found.append(connections[alias])
    return tuple(found)


def _in_atomic(
    first: str, wrappers: tuple[BaseDatabaseWrapper, ...] | None = None
) -> list[BaseDatabaseWrapper]:
    """This thread's connections inside ``atomic()``, the one for ``first`` first."""
    found: list[BaseDatabaseWrapper] = []
    for connection in wrappers if wrappers is not None else _thread_connections():
        if connection.in_atomic_block:
            if connection.alias == first:
                found.insert(0, connection)
            else:
                found.append(connection)
    return found


async def _awaited(awaitable: Any) -> None:
    await awaitable


class DjangoScope(Scope):
    """A scope whose effects escape only after the database commits.

    ``using`` names the database alias checked first and whose manual
    transaction management is refused at flush (default ``"default"``; set a
    project-wide default with ``AIRLOCK = {"SCOPE_KWARGS": {"using": ...}}``);
    a flush waits for the commit of every database this thread has inside
    ``atomic()``. Built without an ``executor``, it uses the configured one, or
    ``AIRLOCK["EXECUTOR"]`` when the app did not configure airlock.
    """

    __slots__ = ("_using",)
    _transaction_bound_only = False
    _tie: _TieToTransactions | None = None  # a root scope's check, when entered inside atomic()

    def __init__(
        self,
        policy: PolicyProtocol | None = None,
        executor: Callable[[Intent], Any] | None = None,
        *,
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
        if executor is None:
            executor = executor_when_unconfigured()
        self._using = using
        super().__init__(policy, executor=executor, origin=origin)

    @property
    def using(self) -> str:
        """The database alias checked first when the flush looks for an open transaction."""
        return self._using

    def enqueue_checks(self) -> Iterable[Callable[[Intent], None]]:
        tie = self._tie
        if tie is not None and get_current_scope() is self:
            # This root scope's own, which knows its atomic() level. Nothing
            # else can be in its chain, so it needs no equality with other ties.
            return (*super().enqueue_checks(), tie.check)
        return (*super().enqueue_checks(), _TieToTransactions())  # called with the intent only

    def enter(self) -> Scope:
        super().enter()
        if self._parent is None and self._tie is None:
            # A root scope entered inside atomic() flushes at that level (a
            # ``with`` block cannot outlive it), where the one on-commit
            # registration of the flush already follows the block's fate: its
            # intents made at that very level need no condition of their own.
            tie = _TieToTransactions(at_entry=True)
            if tie.levels:
                self._tie = tie
        return self

    __enter__ = enter

    def _tied(self, intents: list[Intent]) -> list[bool]:
        """For each intent, whether it was made inside a transaction."""
        tie = self._tie
        at_entry = {id(i) for i in tie.noted} if tie is not None and tie.noted else set()
        return [_has_marker(i) or id(i) in at_entry for i in intents]

    def schedule_dispatch(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` (this flush's dispatch) when the data it follows is committed.

        Called once per flush that dispatches. The default is
        ``transaction.on_commit(callback, robust=True)`` on every database of
        this thread that is inside ``atomic()`` (it runs after the last of
        them commits, and never if one rolls back), and a plain call when none
        is, so that a failure raises [`airlock.DispatchError`][airlock.DispatchError] at the
        flush. Override it to pick another moment (e.g. always right away, or
        after a specific database's commit).
        """
        tie = self._tie  # this thread's connections, if the scope already looked them up here
        wrappers = tie.wrappers if tie is not None and tie.thread == _get_ident() else None
        waiting = _in_atomic(self._using, wrappers)
        if not waiting:
            connection = connections[self._using]
            if connection.connection is not None and not connection.autocommit:
                raise UsageError(
                    f"{type(self).__name__} cannot tell when to dispatch: database {self._using!r} is in "
                    "manual transaction management (autocommit off, no atomic block); "
                    "flush inside transaction.atomic() or with autocommit on"
                )
            callback()
            return
        waited = waiting[0]
        if wrappers is None or len(wrappers) > 1:
            # Another database of this thread may still be inside atomic()
            # when this one commits (with one database, nothing to ask then).
            callback = _after_every_commit(callback, self._using, waited, wrappers)
        _register(waited, callback)

    def _dispatch_all(self, intents: list[Intent]) -> None:
        tie = self._tie
        if tie is not None and tie.noted:
            # The intents made at this root scope's entry levels carry no
            # condition: while those levels are open (the usual case) the
            # registration below follows them; if the scope outlived them
            # (used imperatively), they are void if one of them rolled back.
            for connection, key, pending in tie.levels:
                ids = connection.savepoint_ids
                if not (
                    connection.in_atomic_block
                    and connection.run_on_commit is pending
                    and (ids[-1] if ids else None) == key
                ):
                    if not all(marker.alive() for marker in tie.markers):
                        void = {id(intent) for intent in tie.noted}
                        intents = [intent for intent in intents if id(intent) not in void]
                    break
        if self._transaction_bound_only:
            intents = [intent for intent, tied in zip(intents, self._tied(intents), strict=True) if tied]
        if not intents:
            return
        dispatch_now = super()._dispatch_all

        # A plain function (not a partial): Django's robust-callback logging
        # reads ``__qualname__``. robust: a failed dispatch is logged (by
        # airlock, with each intent, then by Django) instead of stopping the
        # other on-commit callbacks of a transaction that has committed.
        def airlock_dispatch_after_commit() -> None:
            dispatch_now(intents)

        self.schedule_dispatch(airlock_dispatch_after_commit)

    def _dispatch_one_on_the_sync_thread(self, intent: Intent) -> None:
        # The per-intent hook of an async scope's flush that hopped to the
        # request's sync thread: a coroutine task is awaited back on the event loop.
        result = self._executor(intent)
        if result is not None and inspect.isawaitable(result):
            async_to_sync(_awaited)(result)

    async def _adispatch_all(self, intents: list[Intent]) -> None:
        connection = connections[self._using]
        if connection.in_atomic_block:
            # Only reachable with DJANGO_ALLOW_ASYNC_UNSAFE: the commit would
            # happen in this very loop, where the dispatch could not be awaited.
            raise UsageError(
                f"{type(self).__name__} cannot await {len(intents)} intent(s) after the commit: it flushed "
                f"asynchronously inside transaction.atomic() on database {self._using!r}; "
                "exit the scope after the atomic block, or flush it from sync code"
            )
        if self._needs_sync_thread(intents):
            # Where Django runs this request's sync code, and so where a sync
            # middleware's transaction is open: see the module docstring.
            # Set on the instance for this flush only, so that sync scopes keep
            # the core's inline dispatch loop.
            self._dispatch_one = self._dispatch_one_on_the_sync_thread  # type: ignore[method-assign]
            await sync_to_async(self._dispatch_all, thread_sensitive=True)(intents)
            return
        await super()._adispatch_all(intents)

    def _needs_sync_thread(self, intents: list[Intent]) -> bool:
        """Whether this async flush must run on the request's sync thread.

        Not when every intent is a coroutine task run by the in-process
        executor and none was made inside a transaction: that flush stays on
        the event loop, with no thread hop.
        """
        if self._executor is not sync_executor or self._transaction_bound_only:
            return True
        tied = self._tied(intents)
        return not all(
            inspect.iscoroutinefunction(i._task) and not t for i, t in zip(intents, tied, strict=True)
        )

    def dispatch_transaction_bound_only(self) -> None:
        """From now on this scope's flush dispatches only intents made inside a transaction.

        What the middleware does when the client disconnects while a sync view
        still runs: an intent whose transaction commits follows its data, the
        others are discarded with the request.
        """
        self._transaction_bound_only = True


def _after_every_commit(
    callback: Callable[[], None],
    first: str,
    waited: BaseDatabaseWrapper,
    wrappers: tuple[BaseDatabaseWrapper, ...] | None,
    done: list[BaseDatabaseWrapper] | None = None,
) -> Callable[[], None]:
    """``callback``, deferred again while another database of this thread is still in ``atomic()``.

    ``waited`` is the connection whose commit runs this: it is not asked
    again (under ``captureOnCommitCallbacks(execute=True)`` the callbacks run
    while its block is still open). ``wrappers``: this thread's connections,
    when already known (on-commit callbacks run on the thread that registered them).
    ``done``: the connections already waited for (shared by the re-registrations).
    """
    if done is None:
        done = [waited]

    def airlock_dispatch_after_commit() -> None:
        others = [c for c in (wrappers if wrappers is not None else _thread_connections()) if c is not waited]
        if not any(c.in_atomic_block for c in others):
            callback()  # the usual case: no other database in a transaction
            return
        waiting = [c for c in _in_atomic(first) if all(c is not d for d in done)]
        if waiting:
            done.append(waiting[0])
            # A new closure, not this one: registering itself from inside
            # would make it refer to itself, a cycle left to the garbage collector.
            _register(waiting[0], _after_every_commit(callback, first, waited, wrappers, done))
        else:
            callback()

    return airlock_dispatch_after_commit
