"""The durable outbox on Django: ``INSTALLED_APPS += ["airlock.outbox.django"]``.

- `DjangoOutboxScope` stores flushed intents in the ``airlock_outbox``
  table, in the current transaction (``AIRLOCK = {"SCOPE":
  "airlock.outbox.django.DjangoOutboxScope"}`` makes it the default scope).
- ``manage.py airlock_relay`` dispatches them; ``--status`` shows counts.
- The admin lists rows read-only, with "retry" and "dead-letter" actions.
"""

from __future__ import annotations

from ._scope import DjangoOutboxScope

__all__ = ["DjangoOutboxScope", "DjangoStorage"]


def __getattr__(name: str) -> object:
    # The storage imports the model: only once the app registry is ready.
    if name == "DjangoStorage":
        from ._storage import DjangoStorage

        return DjangoStorage
    raise AttributeError(f"module 'airlock.outbox.django' has no attribute {name!r}")
