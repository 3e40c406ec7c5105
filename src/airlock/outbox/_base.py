"""The storage-independent half of an outbox scope.

An outbox scope is an ordinary [`airlock.Scope`][airlock.Scope] (policies, nesting,
inspection are unchanged) whose flush *stores* the allowed intents as rows in
the application's database instead of running them. Effects follow their
data: each intent is tied, at enqueue, to the transaction it was made in, and
its row is written in that transaction (SPEC §5.1, §5.6).

Subclasses say how an intent is tied to its transaction (`_tie()`), where
that transaction stands at flush (`_where()`) and how rows are written
(`_insert()` / `_ainsert()`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from .._errors import UsageError
from .._intent import Intent
from .._lifecycle import Scope
from .._protocols import Policy
from ._carriers import capture_context
from ._model import new_ids
from ._serialize import Payload, serialize_intent
from ._sql import Row

__all__ = ["BaseOutboxScope"]

#: Where the transaction an intent was made in stands, as `BaseOutboxScope._where()` answers.
OPEN: Final = "open"  # still open (or none yet): the row is written in it now
COMMITTED: Final = "committed"  # committed without the row: it can no longer be written in it


class BaseOutboxScope(Scope):
    """A scope whose flush writes intents to an outbox table instead of dispatching them.

    Every intent enqueued in it (or in a scope nested in it) is checked at
    enqueue: the task must be importable by a stable reference and every
    argument must survive a JSON round trip, or
    [`OutboxSerializationError`][airlock.outbox.OutboxSerializationError] is raised at the enqueue
    line. Coroutine tasks are accepted in a ``with`` (sync) scope too: the
    relay awaits them.

    Nested in another scope (a request's, a task's), an outbox scope keeps its
    promise: every enclosing scope's policy judges its intents, but none
    captures them; they are stored at this scope's own flush.

    After a flush, [`stored_ids`][airlock.outbox.BaseOutboxScope.stored_ids] holds the id (idempotency key) of each
    row written, in order; rows whose transaction then rolled back drop out.
    """

    __slots__ = ("_pending", "_refs", "_stored")

    #: This scope's flush is final for its intents (SPEC §5.6): enclosing
    #: scopes judge them but never capture them.
    dispatches_own_intents = True

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        executor: Callable[[Intent], Any] | None = None,
        origin: str | None = None,
    ) -> None:
        # Keyed by id(intent) and holding the intent itself, so an id reused
        # after an intent is garbage collected can never pick up its entry.
        self._pending: dict[int, tuple[Intent, Payload, Any]] = {}
        self._stored: list[tuple[Intent, str, Any]] = []
        self._refs: dict[int, tuple[object, str]] = {}  # the task references found (see serialize_intent)
        super().__init__(policy, executor=executor, origin=origin)

    @property
    def stored_ids(self) -> list[str]:
        """The outbox row ids written by this scope, in order (minus those whose transaction rolled back)."""
        return [row_id for _, row_id, tie in self._stored if self._tie_alive(tie)]

    @property
    def stored(self) -> list[tuple[Intent, str]]:
        """``(intent, row id)`` for every row in [`stored_ids`][airlock.outbox.BaseOutboxScope.stored_ids]."""
        return [(intent, row_id) for intent, row_id, tie in self._stored if self._tie_alive(tie)]

    # -- extension points ----------------------------------------------------

    def _tie(self, intent: Intent) -> Any:
        """Tie ``intent`` to the transaction open now (adding its rollback condition); return the tie."""
        return None

    def _tie_alive(self, tie: Any) -> bool:
        """False once the transaction behind ``tie`` rolled back."""
        return True

    def _where(self, tie: Any) -> str:
        """`OPEN` or `COMMITTED`: may the row of an intent tied by ``tie`` be written now?"""
        return OPEN

    def _insert(self, rows: list[Row]) -> None:  # pragma: no cover - abstract
        """Insert ``rows`` (see `airlock.outbox._sql.Row`) in the current transaction, as one statement."""
        raise NotImplementedError

    async def _ainsert(self, rows: list[Row]) -> None:
        self._insert(rows)

    # -- Scope hooks ---------------------------------------------------------

    def enter(self) -> Scope:
        super().enter()
        # Rows are stored, not run: the relay awaits coroutine tasks, so a
        # sync outbox scope accepts them (SPEC §5.6).
        self._awaits = True
        return self

    __enter__ = enter

    def enqueue_checks(self) -> Iterable[Callable[[Intent], None]]:
        yield from super().enqueue_checks()
        yield self._prepare

    def _prepare(self, intent: Intent) -> None:
        payload = serialize_intent(intent, self._refs)
        context = capture_context()
        if context is not None:
            payload = payload._replace(context=context)
        self._pending[id(intent)] = (intent, payload, self._tie(intent))

    # The library's own check, which never enqueues: the core may run it without its policy-callback guard.
    _prepare.airlock_never_enqueues = True  # type: ignore[attr-defined]

    def _judged_now(self, intents: list[Intent]) -> list[Intent]:
        """What the policies let through of ``intents``, stored before this scope's own flush.

        The same judgement as the flush's: void intents (their transaction or
        savepoint rolled back) out, then local policies, this scope's policy,
        every enclosing scope's (each distinct instance once).
        """
        kept = [i for i in intents if not i._is_void()]
        return self._judged(kept) if kept else kept

    # -- storing -------------------------------------------------------------

    def _entry(self, intent: Intent) -> tuple[Payload, Any]:
        found = self._pending.get(id(intent))
        if found is not None and found[0] is intent:
            return found[1], found[2]
        return serialize_intent(intent, self._refs), self._tie(intent)  # added imperatively, past the checks

    def _rows(self, intents: list[Intent]) -> tuple[list[Row], list[tuple[Intent, str, Any]]]:
        """The new rows of ``intents`` (``(id, *payload)``), and what `stored` will list of them."""
        entries = [(intent, *self._entry(intent)) for intent in intents]
        late = []
        open_tie = None  # the intents of one transaction share their tie: ask once per run of it
        for intent, _, tie in entries:
            if tie is None or tie is not open_tie:
                if self._where(tie) == COMMITTED:
                    late.append(intent)
                    continue
                open_tie = tie
        if late:
            names = ", ".join(intent.name for intent in late)
            raise UsageError(
                f"{type(self).__name__} cannot store {len(late)} intent(s) ({names}): the transaction they were "
                "made in has already committed without them, so their rows can no longer be written in it. "
                "Exit the outbox scope before that transaction commits (open it inside the transaction)."
            )
        rows = []
        stored = []
        for (intent, payload, tie), row_id in zip(entries, new_ids(len(entries)), strict=True):
            stored.append((intent, row_id, tie))
            rows.append((row_id, *payload))
        return rows, stored

    def _forget(self, intents: Iterable[Intent]) -> None:
        for intent in intents:
            self._pending.pop(id(intent), None)

    def _dispatch_all(self, intents: list[Intent]) -> None:
        """Store ``intents`` as outbox rows in their transaction (the relay dispatches them)."""
        rows, stored = self._rows(intents)
        self._insert(rows)
        self._stored.extend(stored)
        self._pending.clear()

    async def _adispatch_all(self, intents: list[Intent]) -> None:
        """Async flush: the same rows, written through the async API where there is one."""
        rows, stored = self._rows(intents)
        await self._ainsert(rows)
        self._stored.extend(stored)
        self._pending.clear()

    def discard(self) -> list[Intent]:
        self._pending.clear()
        return super().discard()
