"""The relay's side of the Django outbox, through the ORM."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from typing import Any

from django.db import connections, transaction
from django.db.models import Count, Exists, F, Min, OuterRef, Q, Subquery
from django.utils import timezone

from .._model import DEAD, DONE, INFLIGHT, PENDING, ClaimedRow, Failure, OutboxStatus
from .._sql import postgres_relay_settings
from .models import OutboxKey, OutboxRow

__all__ = ["DjangoStorage"]

logger = logging.getLogger("airlock.outbox")

_COLUMNS = (
    "outbox_id", "seq", "task", "name", "args", "kwargs", "options", "ordering_key", "origin", "attempts", "context",
)  # fmt: skip


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    # Retry times come from the relay as naive UTC; Django wants aware ones under USE_TZ.
    if value is not None and timezone.is_naive(value) and timezone.is_aware(timezone.now()):
        return value.replace(tzinfo=dt.UTC)
    return value


class DjangoStorage:
    """Outbox rows in the ``OutboxRow`` table of database ``using``."""

    def __init__(self, using: str = "default") -> None:
        if using not in connections:
            raise ValueError(f"DjangoStorage(using=...): no database {using!r} in DATABASES")
        self.using = using
        self._listener: Any = None

    def _rows(self) -> Any:
        return OutboxRow.objects.using(self.using)

    def claim(self, limit: int, lease: float) -> tuple[str, list[ClaimedRow]]:
        token = str(uuid.uuid4())
        now = timezone.now()
        rows = self._rows()
        earlier = rows.filter(
            ordering_key=OuterRef("ordering_key"), seq__lt=OuterRef("seq"), state__in=(PENDING, INFLIGHT)
        )
        due = Q(state=PENDING) & (Q(available_at__isnull=True) | Q(available_at__lte=now))
        due |= Q(state=INFLIGHT, lease_until__lt=now)
        candidates = rows.filter(due).filter(Q(ordering_key__isnull=True) | ~Exists(earlier)).order_by("seq")
        claimed = {
            "state": INFLIGHT,
            "claim_token": token,
            "lease_until": now + dt.timedelta(seconds=lease),
            "attempts": F("attempts") + 1,
        }
        connection = connections[self.using]
        with transaction.atomic(using=self.using):
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(postgres_relay_settings(claiming=True))
            if connection.features.has_select_for_update_skip_locked:
                seqs = list(
                    candidates.select_for_update(skip_locked=True).values_list("seq", flat=True)[:limit]
                )
                if not seqs:
                    return token, []
                rows.filter(seq__in=seqs).update(**claimed)
            else:
                # No SKIP LOCKED (SQLite): one conditional UPDATE; the database runs one writer at a time.
                if not rows.filter(seq__in=Subquery(candidates.values("seq")[:limit])).update(**claimed):
                    return token, []
            found = list(rows.filter(claim_token=token).order_by("seq").values_list(*_COLUMNS))
        return token, [ClaimedRow._make(row) for row in found]

    def finish(self, token: str, done: list[str], failed: list[Failure], released: list[str]) -> None:
        now = timezone.now()
        held = self._rows().filter(claim_token=token)
        connection = connections[self.using]
        with transaction.atomic(using=self.using):
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(postgres_relay_settings())
            if done:
                # Usually the whole claim succeeded: mark it by its token (indexed), not by every id.
                others = [f.id for f in failed] + released
                rows = held.exclude(outbox_id__in=others) if others else held
                rows.update(state=DONE, done_at=now, lease_until=None, claim_token=None)
            for failure in failed:
                held.filter(outbox_id=failure.id).update(
                    state=PENDING if failure.retry_at is not None else DEAD,
                    available_at=_aware(failure.retry_at),
                    last_error=failure.error[:4000],
                    lease_until=None,
                    claim_token=None,
                    done_at=None if failure.retry_at is not None else now,  # dead since: for pruning
                )
            if released:
                held.filter(outbox_id__in=released).update(
                    state=PENDING, attempts=F("attempts") - 1, lease_until=None, claim_token=None
                )

    def status(self) -> OutboxStatus:
        rows = self._rows()
        counts = {r["state"]: r["n"] for r in rows.order_by().values("state").annotate(n=Count("seq"))}
        failed = rows.filter(state=PENDING, attempts__gt=0).count()
        oldest = rows.filter(state__in=(PENDING, INFLIGHT)).aggregate(oldest=Min("created_at"))["oldest"]
        age = None if oldest is None else max(0.0, (timezone.now() - oldest).total_seconds())
        return OutboxStatus.from_counts(counts, failed=failed, oldest_age=age)

    def prune(self, older_than: float | None, dead_older_than: float | None = None) -> int:
        """Delete done rows older than ``older_than`` seconds and dead rows dead longer than
        ``dead_older_than`` (``None``: keep); return how many."""
        now = timezone.now()
        deleted = 0
        for state, age in ((DONE, older_than), (DEAD, dead_older_than)):
            if age is not None:
                cutoff = now - dt.timedelta(seconds=age)
                count, _ = self._rows().filter(state=state, done_at__lt=cutoff).delete()
                deleted += int(count)
        if deleted:
            waiting = self._rows().filter(
                ordering_key=OuterRef("ordering_key"), state__in=(PENDING, INFLIGHT)
            )
            OutboxKey.objects.using(self.using).filter(~Exists(waiting)).delete()
        return deleted

    def recover(self) -> None:
        """After a failed cycle (lost connection, database restart): drop the broken connections."""
        self.close()
        connections[self.using].close()

    def retry(self, ids: list[str]) -> int:
        """Put dead (or failed) rows back to pending, due now, with a fresh attempt count."""
        return int(
            self._rows()
            .filter(outbox_id__in=ids, state__in=(DEAD, PENDING))
            .update(state=PENDING, attempts=0, available_at=None, done_at=None)
        )

    def wait(self, timeout: float) -> bool:
        """On PostgreSQL with psycopg 3, wait for the scope's NOTIFY; elsewhere just sleep."""
        if connections[self.using].vendor == "postgresql":
            try:
                if self._listener is None:
                    wrapper = connections.create_connection(self.using)
                    wrapper.ensure_connection()
                    raw = wrapper.connection
                    if not hasattr(raw, "notifies"):
                        raise RuntimeError("psycopg 3 is needed for LISTEN")
                    raw.autocommit = True
                    raw.execute(f'LISTEN "{OutboxRow._meta.db_table}"')
                    self._listener = wrapper
                for _ in self._listener.connection.notifies(timeout=timeout, stop_after=1):
                    return True
                return False
            except Exception:
                logger.warning("airlock.outbox: LISTEN unavailable; polling", exc_info=True)
                self.close()
        time.sleep(timeout)
        return False

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.close()
            except Exception:  # pragma: no cover - already broken
                pass
