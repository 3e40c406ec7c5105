"""The durable outbox: committed means dispatched, even across crashes.

``OutboxScope`` (SQLAlchemy) and ``airlock.outbox.django.DjangoOutboxScope``
store the intents they flush as rows in the application's own database, in the
same transaction as the business data; a relay (``python -m airlock.outbox
relay`` or ``manage.py airlock_relay``) dispatches them through the executor,
at least once. See ``docs/outbox.md``.

The SQLAlchemy names are imported lazily, so the Django storage works without
SQLAlchemy installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import BaseOutboxScope
from ._model import DEAD, DONE, INFLIGHT, PENDING, ClaimedRow, Failure, OutboxStatus, OutboxStorage
from ._relay import OUTBOX_ID_KWARG, Relay, RelayStats, current_outbox_id
from ._serialize import ORDERING_KEY_OPTION, OutboxSerializationError, resolve_task, task_reference

if TYPE_CHECKING:
    from ._scope import OutboxScope
    from ._storage import SQLAlchemyStorage, engine_from_url
    from ._table import metadata, outbox_table, table

__all__ = [
    "DEAD",
    "DONE",
    "INFLIGHT",
    "ORDERING_KEY_OPTION",
    "OUTBOX_ID_KWARG",
    "PENDING",
    "BaseOutboxScope",
    "ClaimedRow",
    "Failure",
    "OutboxScope",
    "OutboxSerializationError",
    "OutboxStatus",
    "OutboxStorage",
    "Relay",
    "RelayStats",
    "SQLAlchemyStorage",
    "current_outbox_id",
    "engine_from_url",
    "metadata",
    "outbox_table",
    "resolve_task",
    "table",
    "task_reference",
]

_LAZY = {
    "OutboxScope": "._scope",
    "SQLAlchemyStorage": "._storage",
    "engine_from_url": "._storage",
    "metadata": "._table",
    "outbox_table": "._table",
    "table": "._table",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'airlock.outbox' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
