"""The storage-independent half of an outbox scope.

An outbox scope is an ordinary :class:`airlock.Scope` (policies, nesting,
inspection are unchanged) whose flush *stores* the allowed intents as rows in
the application's database, in the transaction that is current at that moment,
instead of running them. Subclasses say where the rows go (:meth:`_insert`) and
how to tell that the transaction an intent was enqueued in has rolled back
(:meth:`_transaction_condition`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from .._intent import Intent
from .._policies import PolicyProtocol
from .._scope import Scope
from ._model import PENDING, utcnow
from ._serialize import Payload, serialize_intent

__all__ = ["BaseOutboxScope"]


class BaseOutboxScope(Scope):
    """A scope whose flush writes intents to an outbox table instead of dispatching them.

    Every intent enqueued in it (or in a scope nested in it) is checked at
    enqueue: the task must be importable by a stable reference and every
    argument must survive a JSON round trip, or
    :class:`~airlock.outbox.OutboxSerializationError` is raised at the enqueue
    line. After a flush, :attr:`stored_ids` holds the id (idempotency key) of
    each row written, in order.
    """

    __slots__ = ("_payloads", "_stored")

    def __init__(
        self,
        policy: PolicyProtocol | None = None,
        *,
        executor: Callable[[Intent], Any] | None = None,
        origin: str | None = None,
    ) -> None:
        # Keyed by id(intent) and holding the intent itself, so an id reused
        # after an intent is garbage collected can never pick up its payload.
        self._payloads: dict[int, tuple[Intent, Payload]] = {}
        self._stored: list[tuple[Intent, str]] = []
        super().__init__(policy, executor=executor, origin=origin)

    @property
    def stored_ids(self) -> list[str]:
        """The outbox row ids written by this scope's flush, in dispatch order."""
        return [row_id for _, row_id in self._stored]

    @property
    def stored(self) -> list[tuple[Intent, str]]:
        """``(intent, row id)`` for every row written by this scope's flush."""
        return list(self._stored)

    # -- extension points ----------------------------------------------------

    def _insert(self, rows: list[dict[str, Any]]) -> None:  # pragma: no cover - abstract
        """Insert ``rows`` (column -> value) in the current transaction."""
        raise NotImplementedError

    def _transaction_condition(self) -> Callable[[], bool] | None:
        """A condition that turns False if the transaction (or savepoint) open now rolls back."""
        return None

    # -- Scope hooks ---------------------------------------------------------

    def enqueue_checks(self) -> Iterable[Callable[[Intent], None]]:
        yield from super().enqueue_checks()
        yield self._check_storable
        yield self._tie_to_transaction

    def _check_storable(self, intent: Intent) -> None:
        self._payloads[id(intent)] = (intent, serialize_intent(intent))

    def _tie_to_transaction(self, intent: Intent) -> None:
        condition = self._transaction_condition()
        if condition is not None:
            intent.add_condition(condition)

    def _rows(self, intents: list[Intent]) -> tuple[list[dict[str, Any]], list[tuple[Intent, str]]]:
        now = utcnow()
        rows = []
        stored = []
        for intent in intents:
            cached = self._payloads.get(id(intent))
            payload = cached[1] if cached is not None and cached[0] is intent else serialize_intent(intent)
            row_id = str(uuid.uuid4())
            stored.append((intent, row_id))
            rows.append(
                {
                    "id": row_id,
                    "task": payload.task_ref,
                    "name": payload.name[:200],
                    "args": payload.args,
                    "kwargs": payload.kwargs,
                    "options": payload.options,
                    "ordering_key": payload.ordering_key,
                    "origin": payload.origin,
                    "state": PENDING,
                    "attempts": 0,
                    "created_at": now,
                    "available_at": None,
                }
            )
        self._payloads.clear()
        return rows, stored

    def _dispatch_all(self, intents: list[Intent]) -> None:
        """Store ``intents`` as outbox rows in the current transaction (the relay dispatches them)."""
        rows, stored = self._rows(intents)
        self._insert(rows)
        self._stored.extend(stored)

    async def _adispatch_all(self, intents: list[Intent]) -> None:
        """Async flush: the rows are written the same way (storage is synchronous)."""
        rows, stored = self._rows(intents)
        await self._ainsert(rows)
        self._stored.extend(stored)

    async def _ainsert(self, rows: list[dict[str, Any]]) -> None:
        self._insert(rows)
