"""What every outbox storage shares: row states, claimed rows, counts, the storage protocol.

Framework-free on purpose: the relay and the Django storage use it without
SQLAlchemy, the SQLAlchemy storage without Django.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, Protocol

__all__ = [
    "DEAD",
    "DONE",
    "INFLIGHT",
    "PENDING",
    "STATES",
    "ClaimedRow",
    "Failure",
    "OutboxStatus",
    "OutboxStorage",
    "new_ids",
    "utcnow",
]

#: Waiting to be dispatched (new, or failed and waiting for its retry time).
PENDING = "pending"
#: Claimed by a relay until ``lease_until``; dispatched or about to be.
INFLIGHT = "inflight"
#: Dispatched and recorded as such; pruned after the retention period.
DONE = "done"
#: Failed ``max_attempts`` times; kept for inspection, retried only by hand.
DEAD = "dead"
STATES = (PENDING, INFLIGHT, DONE, DEAD)


def utcnow() -> dt.datetime:
    """Naive UTC "now", the one clock every outbox timestamp is written in."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# The UUID variant character (bits 10xx, RFC 9562) for each random hex digit in its place.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_ids(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs as strings: the rows' ids, their idempotency keys.

    From one ``os.urandom`` call, formatted here: ``str(uuid.uuid4())`` per row
    costs five times as much, a noticeable part of a ten-row flush.
    """
    h = os.urandom(16 * n).hex()
    return [
        f"{h[k : k + 8]}-{h[k + 8 : k + 12]}-4{h[k + 13 : k + 16]}-{_VARIANT[h[k + 16]]}{h[k + 17 : k + 20]}-{h[k + 20 : k + 32]}"
        for k in range(0, 32 * n, 32)
    ]


class ClaimedRow(NamedTuple):
    """One row handed to a relay by [`OutboxStorage.claim()`][airlock.outbox.OutboxStorage.claim]."""

    id: str
    seq: int
    task: str
    name: str
    args: str
    kwargs: str
    options: str | None
    ordering_key: str | None
    origin: str | None
    attempts: int
    context: str | None = None


class Failure(NamedTuple):
    """A failed dispatch: back to pending at ``retry_at``, or dead when ``retry_at`` is None."""

    id: str
    error: str
    retry_at: dt.datetime | None


@dataclass(frozen=True)
class OutboxStatus:
    """Counts of the outbox table, as shown by ``status``.

    ``pending`` counts every row waiting to be dispatched, including the
    ``failed`` ones (attempted at least once, waiting for their retry time).
    ``oldest_age`` is the age in seconds of the oldest row not yet done or dead.
    """

    pending: int
    in_flight: int
    failed: int
    dead: int
    done: int
    oldest_age: float | None

    @classmethod
    def from_counts(cls, by_state: dict[str, int], *, failed: int, oldest_age: float | None) -> OutboxStatus:
        """Build from row counts per state, as both storages query them."""
        return cls(
            pending=by_state.get(PENDING, 0),
            in_flight=by_state.get(INFLIGHT, 0),
            failed=failed,
            dead=by_state.get(DEAD, 0),
            done=by_state.get(DONE, 0),
            oldest_age=oldest_age,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class OutboxStorage(Protocol):
    """Where a relay claims rows and records what became of them."""

    def claim(self, limit: int, lease: float) -> tuple[str, list[ClaimedRow]]:
        """Claim up to ``limit`` dispatchable rows for ``lease`` seconds; return the claim token and rows.

        Rows come in commit (``seq``) order; a row with an ordering key is
        claimable only when no earlier row with the same key is pending or in
        flight. Claimed rows count one more attempt.
        """
        ...

    def finish(self, token: str, done: list[str], failed: list[Failure], released: list[str]) -> None:
        """Record, in one transaction, the outcome of a claim (only rows still held by ``token``).

        Every row of the claim is in exactly one of the three lists.
        """
        ...

    def status(self) -> OutboxStatus: ...

    def prune(self, older_than: float | None, dead_older_than: float | None = None) -> int:
        """Delete done rows finished more than ``older_than`` seconds ago, and dead rows dead more than
        ``dead_older_than`` seconds ago (``None``: keep them); return how many."""
        ...

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds or until new rows are announced; True if announced."""
        ...

    def close(self) -> None: ...
