"""The relay's side of the SQLAlchemy outbox: claim, finish, count, prune, listen."""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import (
    Engine,
    MetaData,
    Table,
    and_,

    create_engine,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url

from ._model import DEAD, DONE, INFLIGHT, PENDING, ClaimedRow, Failure, OutboxStatus, utcnow
from ._table import DEFAULT_TABLE_NAME, outbox_table

__all__ = ["SQLAlchemyStorage", "engine_from_url"]

logger = logging.getLogger("airlock.outbox")

# Dialects with SELECT ... FOR UPDATE SKIP LOCKED. Elsewhere (SQLite) a single
# conditional UPDATE claims the rows: the database runs one writer at a time,
# so two relays can never claim the same row.
_SKIP_LOCKED = {"postgresql", "mysql", "mariadb", "oracle"}
_CHUNK = 500


def engine_from_url(url: str, **kwargs: Any) -> Engine:
    """``create_engine`` with the installed driver for bare ``postgresql://`` / ``mysql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        if importlib.util.find_spec("psycopg2") is None:
            parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername in ("mysql", "mariadb"):
        if importlib.util.find_spec("MySQLdb") is None:
            parsed = parsed.set(drivername=f"{parsed.drivername}+pymysql")
    return create_engine(parsed, **kwargs)


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


class SQLAlchemyStorage:
    """Outbox rows in ``table`` (default ``airlock_outbox``) reached through ``engine``."""

    def __init__(self, engine: Engine, table: Table | str | None = None) -> None:
        if table is None or isinstance(table, str):
            table = outbox_table(MetaData(), table or DEFAULT_TABLE_NAME)
        self.engine = engine
        self.table = table
        self.dialect = engine.dialect.name
        self._listener: Any = None

    @classmethod
    def from_url(cls, url: str, table: str | None = None) -> SQLAlchemyStorage:
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if make_url(url).get_backend_name() in ("mysql", "mariadb"):
            # No gap locks: a claim must not hold up the application's inserts.
            kwargs["isolation_level"] = "READ COMMITTED"
        return cls(engine_from_url(url, **kwargs), table)

    # -- schema --------------------------------------------------------------

    def create_table(self) -> None:
        """Create the table and its indexes if missing."""
        self.table.create(self.engine, checkfirst=True)

    def drop_table(self) -> None:
        self.table.drop(self.engine, checkfirst=True)

    # -- claiming ------------------------------------------------------------

    def _claimable(self, now: dt.datetime) -> Any:
        t = self.table
        earlier = t.alias("earlier")
        blocked = exists().where(
            earlier.c.ordering_key == t.c.ordering_key,
            earlier.c.seq < t.c.seq,
            earlier.c.state.in_((PENDING, INFLIGHT)),
        )
        due = or_(
            and_(t.c.state == PENDING, or_(t.c.available_at.is_(None), t.c.available_at <= now)),
            and_(t.c.state == INFLIGHT, t.c.lease_until < now),
        )
        return and_(due, or_(t.c.ordering_key.is_(None), ~blocked))

    def claim(self, limit: int, lease: float) -> tuple[str, list[ClaimedRow]]:
        t = self.table
        token = str(uuid.uuid4())
        now = utcnow()
        claimed = {
            "state": INFLIGHT,
            "claim_token": token,
            "lease_until": now + dt.timedelta(seconds=lease),
            "attempts": t.c.attempts + 1,
        }
        with self.engine.begin() as conn:
            if self.dialect in _SKIP_LOCKED:
                seqs = list(
                    conn.scalars(
                        select(t.c.seq)
                        .where(self._claimable(now))
                        .order_by(t.c.seq)
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                )
                if not seqs:
                    return token, []
                conn.execute(update(t).where(t.c.seq.in_(seqs)).values(**claimed))
            else:
                candidates = select(t.c.seq).where(self._claimable(now)).order_by(t.c.seq).limit(limit)
                result = conn.execute(update(t).where(t.c.seq.in_(candidates.scalar_subquery())).values(**claimed))
                if not result.rowcount:
                    return token, []
            rows = conn.execute(
                select(
                    t.c.id,
                    t.c.seq,
                    t.c.task,
                    t.c.name,
                    t.c.args,
                    t.c.kwargs,
                    t.c.options,
                    t.c.ordering_key,
                    t.c.origin,
                    t.c.attempts,
                )
                .where(t.c.claim_token == token)
                .order_by(t.c.seq)
            ).all()
        return token, [ClaimedRow._make(row) for row in rows]

    def finish(self, token: str, done: list[str], failed: list[Failure], released: list[str]) -> None:
        t = self.table
        now = utcnow()
        held = t.c.claim_token == token
        with self.engine.begin() as conn:
            for ids in _chunks(done):
                conn.execute(
                    update(t)
                    .where(held, t.c.id.in_(ids))
                    .values(state=DONE, done_at=now, lease_until=None, claim_token=None)
                )
            for failure in failed:
                conn.execute(
                    update(t)
                    .where(held, t.c.id == failure.id)
                    .values(
                        state=PENDING if failure.retry_at is not None else DEAD,
                        available_at=failure.retry_at,
                        last_error=failure.error[:4000],
                        lease_until=None,
                        claim_token=None,
                    )
                )
            for ids in _chunks(released):
                # Never attempted: give the attempt back.
                conn.execute(
                    update(t)
                    .where(held, t.c.id.in_(ids))
                    .values(state=PENDING, attempts=t.c.attempts - 1, lease_until=None, claim_token=None)
                )

    # -- inspection and maintenance -------------------------------------------

    def status(self) -> OutboxStatus:
        t = self.table
        waiting = t.c.state.in_((PENDING, INFLIGHT))
        with self.engine.connect() as conn:
            counts: dict[str, int] = dict(conn.execute(select(t.c.state, func.count()).group_by(t.c.state)).all())
            failed = conn.scalar(select(func.count()).where(t.c.state == PENDING, t.c.attempts > 0)) or 0
            oldest = conn.scalar(select(func.min(t.c.created_at)).where(waiting))
        age = None
        if oldest is not None:
            if isinstance(oldest, str):  # pragma: no cover - drivers that return text
                oldest = dt.datetime.fromisoformat(oldest)
            age = max(0.0, (utcnow() - oldest).total_seconds())
        return OutboxStatus.from_counts(counts, failed=failed, oldest_age=age)

    def prune(self, older_than: float) -> int:
        t = self.table
        cutoff = utcnow() - dt.timedelta(seconds=older_than)
        with self.engine.begin() as conn:
            result = conn.execute(delete(t).where(t.c.state == DONE, t.c.done_at < cutoff))
        return int(result.rowcount or 0)

    def retry(self, ids: list[str]) -> int:
        """Put dead (or failed) rows back to pending, due now, with a fresh attempt count."""
        t = self.table
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t)
                .where(t.c.id.in_(ids), t.c.state.in_((DEAD, PENDING)))
                .values(state=PENDING, attempts=0, available_at=None)
            )
        return int(result.rowcount or 0)

    # -- waking up -------------------------------------------------------------

    def _listen_connection(self) -> Any:
        if self._listener is None:
            raw = self.engine.raw_connection()
            driver: Any = raw.driver_connection
            if not hasattr(driver, "notifies"):  # psycopg 3 only; others poll
                raw.close()
                self._listener = False
                return None
            driver.autocommit = True
            driver.execute(f'LISTEN "{self.table.name}"')
            self._listener = raw
        return self._listener or None

    def wait(self, timeout: float) -> bool:
        """On PostgreSQL (psycopg 3), wait for the scope's NOTIFY; elsewhere just sleep."""
        if self.dialect == "postgresql":
            raw = self._listen_connection()
            if raw is not None:
                try:
                    for _ in raw.driver_connection.notifies(timeout=timeout, stop_after=1):
                        return True
                    return False
                except Exception:  # connection lost: fall back to a fresh one next time
                    logger.warning("airlock.outbox: LISTEN connection lost; reconnecting", exc_info=True)
                    self._drop_listener()
        time.sleep(timeout)
        return False

    def _drop_listener(self) -> None:
        raw, self._listener = self._listener, None
        if raw:
            try:
                raw.invalidate()
            except Exception:  # pragma: no cover - already broken
                pass

    def close(self) -> None:
        self._drop_listener()
        self.engine.dispose()
