"""The relay: moves committed outbox rows to the executor, at least once.

One loop, any number of processes:

    claim a batch (rows leased to this relay; SKIP LOCKED or a conditional UPDATE)
    -> dispatch each row through the executor, in commit order
    -> record the outcome in one transaction (done / retry later / dead)

A relay that dies between publishing a row and recording it leaves the row
``inflight`` until its lease expires; another relay (or the restarted one)
then claims and publishes it again. That is the only source of duplicates:
at most the batch that was in hand. Nothing committed is ever lost: a row
leaves the table only as ``done`` (pruned later) or ``dead`` (kept).
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import inspect
import logging
import random
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from .._intent import Intent, is_coroutine_task
from .._lifecycle import Scope
from ._carriers import restored_context
from ._model import ClaimedRow, Failure, OutboxStorage, utcnow
from ._serialize import deserialize, resolve_task

__all__ = ["OUTBOX_ID_KWARG", "Relay", "RelayStats", "current_outbox_id"]

logger = logging.getLogger("airlock.outbox")

#: Keyword argument through which a plain task receives its row id, if its signature names it.
OUTBOX_ID_KWARG = "airlock_outbox_id"

_current_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("airlock_outbox_id", default=None)


def current_outbox_id() -> str | None:
    """The id of the outbox row being dispatched (inside the relay's executor call), else None."""
    return _current_id.get()


@dataclass
class RelayStats:
    """What a relay has done since it started."""

    batches: int = 0
    dispatched: int = 0
    failed: int = 0
    dead: int = 0
    released: int = 0
    pruned: int = 0
    notified: int = 0  # idle waits cut short by a NOTIFY (PostgreSQL)
    started: float = field(default_factory=time.monotonic)


def _producer_pool_of(task: Any) -> Any:
    """The Celery app whose producer a batch can share, for a Celery task object (else None)."""
    app = getattr(task, "app", None)
    return app if callable(getattr(app, "producer_or_acquire", None)) else None


def _is_celery_executor(executor: Any) -> bool:
    return getattr(executor, "__module__", None) == "airlock.integrations.executors.celery"


def _accepts_outbox_id(task: Callable[..., Any]) -> bool:
    try:
        return OUTBOX_ID_KWARG in inspect.signature(task).parameters
    except (TypeError, ValueError):
        return False


class Relay:
    """Dispatch the rows of an outbox ``storage`` through ``executor``.

    - ``batch_size`` rows are claimed at a time, leased for ``lease`` seconds.
      The lease must comfortably exceed the time a batch takes to publish; a
      relay stops publishing a batch at 80% of its lease and hands the rest back.
    - A failed row is retried after ``min(backoff_cap, backoff * 2**(attempts-1))``
      seconds, scaled by a random factor in [0.5, 1) (jitter), and is dead after
      ``max_attempts`` attempts.
    - When idle, the relay waits ``idle_min`` seconds, doubling up to
      ``idle_max``; a PostgreSQL NOTIFY from a committing scope wakes it at once.
    - Done rows older than ``retention`` seconds, and dead rows dead for more
      than ``dead_retention`` seconds, are pruned every ``prune_every``
      seconds (``None``: never; dead rows are kept by default).
    - A task that raises anything, ``BaseException`` included (``SystemExit``,
      ``KeyboardInterrupt``, ``CancelledError``), is a failed attempt. A row
      claimed again after ``max_attempts`` attempts (its relay died while
      sending it, e.g. the task killed the process) is dead-lettered without
      being sent again: no crash loop.
    - A lost database connection or a database restart never ends the relay:
      the cycle is retried with backoff (0.1 s doubling to ``idle_max``,
      at least 5 s) until the database answers again.
    - With the Celery executor, each batch publishes through one producer
      (one broker connection) instead of acquiring one per row.
    - The row id reaches the task as its idempotency key: as the Celery task id
      (``task_id`` dispatch option) for task objects with ``apply_async``; as
      the ``airlock_outbox_id`` keyword argument for callables that declare
      that parameter; and from [`current_outbox_id()`][airlock.outbox.current_outbox_id] during the call.
    """

    def __init__(
        self,
        storage: OutboxStorage,
        executor: Callable[[Intent], Any] | None = None,
        *,
        batch_size: int = 100,
        lease: float = 60.0,
        max_attempts: int = 10,
        backoff: float = 1.0,
        backoff_cap: float = 300.0,
        idle_min: float = 0.05,
        idle_max: float = 5.0,
        retention: float | None = 7 * 24 * 3600.0,
        dead_retention: float | None = None,
        prune_every: float = 600.0,
    ) -> None:
        if executor is None:
            from .. import _execute, get_configuration

            executor = get_configuration()["executor"] or _execute
        if not callable(executor):
            raise TypeError(f"Relay(executor=...) needs a callable taking an Intent, got {executor!r}")
        for label, value in (("batch_size", batch_size), ("max_attempts", max_attempts)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Relay({label}=...) must be a positive integer, got {value!r}")
        for label, number in (("lease", lease), ("backoff", backoff), ("idle_max", idle_max)):
            if not number > 0:
                raise ValueError(f"Relay({label}=...) must be positive, got {number!r}")
        self.storage = storage
        self.executor = executor
        self.batch_size = batch_size
        self.lease = lease
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.idle_min = min(idle_min, idle_max)
        self.idle_max = idle_max
        self.retention = retention
        self.dead_retention = dead_retention
        self.prune_every = prune_every
        self.stats = RelayStats()
        self._stopping = threading.Event()
        self._tasks: dict[str, tuple[Callable[..., Any], bool, bool, bool]] = {}
        # Never entered: the relay borrows the core's per-intent dispatch hooks,
        # so a row runs exactly as a flush would run it.
        self._runner = Scope(executor=executor)
        self._share_producer = _is_celery_executor(executor)

    # -- control -------------------------------------------------------------

    def stop(self) -> None:
        """Ask the relay to stop after the batch in hand (safe from signal handlers and threads)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @contextmanager
    def _signals(self) -> Iterator[None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            logger.info("airlock.outbox: relay got signal %d, stopping after the batch in hand", signum)
            self.stop()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def run(self, *, handle_signals: bool = True, until_idle: bool = False) -> RelayStats:
        """Relay until [`stop()`][airlock.outbox.Relay.stop] (or SIGTERM/SIGINT); with ``until_idle``, until nothing is claimable."""
        if handle_signals and threading.current_thread() is threading.main_thread():
            with self._signals():
                return self._loop(until_idle)
        return self._loop(until_idle)

    def _loop(self, until_idle: bool) -> RelayStats:
        idle = self.idle_min
        last_prune = last_log = time.monotonic()
        try:
            self.storage.wait(0)  # start listening (PostgreSQL) before the first claim: no NOTIFY missed
        except Exception:
            logger.exception("airlock.outbox: could not start listening; polling")
        logger.info("airlock.outbox: relay started (batch %d, lease %.1fs)", self.batch_size, self.lease)
        error_wait = 0.0
        while not self._stopping.is_set():
            try:
                handled = self.run_once()
                error_wait = 0.0
            except Exception:
                # The database is unreachable or restarting (or the storage hit
                # a bug): never end the process; back off and try again.
                error_wait = min(max(self.idle_max, 5.0), error_wait * 2 or 0.1)
                logger.exception("airlock.outbox: relay cycle failed; retrying in %.1fs", error_wait)
                self._recover()
                self._sleep(error_wait)
                continue
            now = time.monotonic()
            pruning = self.retention is not None or self.dead_retention is not None
            if pruning and now - last_prune >= self.prune_every:
                last_prune = now
                self._prune()
            if now - last_log >= 60:
                last_log = now
                self._log_stats()
            if handled:
                idle = self.idle_min
                continue
            if until_idle:
                break
            self._wait(idle)
            idle = min(idle * 2, self.idle_max)
        self._log_stats()
        return self.stats

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                woken = self.storage.wait(min(left, 0.5))
            except Exception:
                logger.warning("airlock.outbox: waiting for new rows failed; polling", exc_info=True)
                self._sleep(min(left, 0.5))
                continue
            if woken:
                self.stats.notified += 1
                return

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _recover(self) -> None:
        recover = getattr(self.storage, "recover", None)
        if recover is not None:
            try:
                recover()
            except Exception:
                logger.warning("airlock.outbox: resetting the storage's connections failed", exc_info=True)

    def _prune(self) -> None:
        try:
            pruned = self.storage.prune(self.retention, self.dead_retention)
        except Exception:
            logger.exception("airlock.outbox: pruning done/dead rows failed")
            return
        self.stats.pruned += pruned
        if pruned:
            logger.info("airlock.outbox: pruned %d done/dead row(s)", pruned)

    def _log_stats(self) -> None:
        s = self.stats
        logger.info(
            "airlock.outbox: relay stats: %d batch(es), %d dispatched, %d failed, %d dead, %d pruned",
            s.batches,
            s.dispatched,
            s.failed,
            s.dead,
            s.pruned,
            extra={"airlock_relay_stats": s},
        )

    # -- one batch -------------------------------------------------------------

    def run_once(self) -> int:
        """Claim one batch, dispatch it, record the outcome; return how many rows were claimed."""
        started = time.monotonic()
        token, rows = self.storage.claim(self.batch_size, self.lease)
        if not rows:
            return 0
        self.stats.batches += 1
        deadline = started + self.lease * 0.8
        done: list[str] = []
        failed: list[Failure] = []
        released: list[str] = []
        with self._batch() as producers:
            for row in rows:
                if row.attempts > self.max_attempts:
                    # Claimed once more than allowed: the relay that made the last
                    # attempt died while sending (e.g. the task killed it). Never again.
                    failed.append(self._dead_in_flight(row))
                    continue
                if time.monotonic() > deadline:
                    released.append(row.id)
                    continue
                error = self._dispatch(row, producers)
                if error is None:
                    done.append(row.id)
                else:
                    failed.append(self._failure(row, error))
        self._finish(token, done, failed, released)
        self.stats.dispatched += len(done)
        self.stats.released += len(released)
        if released:
            logger.warning(
                "airlock.outbox: lease nearly over; handed back %d row(s) unpublished", len(released)
            )
        return len(rows)

    @contextmanager
    def _batch(self) -> Iterator[dict[int, Any]]:
        """Producers shared by one batch (Celery: one per app), released when the batch ends."""
        producers: dict[int, Any] = {}
        try:
            yield producers
        finally:
            for context, _ in producers.values():
                try:
                    context.__exit__(None, None, None)
                except Exception:  # pragma: no cover - a broken connection goes back to the pool
                    logger.warning("airlock.outbox: releasing a producer failed", exc_info=True)

    def _producer(self, task: Any, producers: dict[int, Any]) -> Any:
        app = _producer_pool_of(task)
        if app is None:
            return None
        found = producers.get(id(app))
        if found is None:
            context = app.producer_or_acquire()
            found = producers[id(app)] = (context, context.__enter__())
        return found[1]

    def _finish(self, token: str, done: list[str], failed: list[Failure], released: list[str]) -> None:
        # The rows are published: try hard to record it, or they will be
        # published again when the lease expires.
        delay = 0.1
        while True:
            try:
                self.storage.finish(token, done, failed, released)
                return
            except Exception:
                if delay > self.lease / 2:
                    raise
                logger.warning(
                    "airlock.outbox: recording a batch failed; retrying in %.1fs", delay, exc_info=True
                )
                time.sleep(delay)
                delay *= 2

    def _resolve(self, ref: str) -> tuple[Callable[..., Any], bool, bool, bool]:
        found = self._tasks.get(ref)
        if found is None:
            task = resolve_task(ref)
            found = self._tasks[ref] = (
                task,
                hasattr(task, "apply_async"),
                _accepts_outbox_id(task),
                is_coroutine_task(task),
            )
        return found

    def _run(self, intent: Intent, is_coroutine: bool) -> None:
        if is_coroutine:
            asyncio.run(self._runner._adispatch_one(intent))  # the relay awaits coroutine tasks
        else:
            self._runner._dispatch_one(intent)

    def _dispatch(self, row: ClaimedRow, producers: dict[int, Any]) -> BaseException | None:
        try:
            task, is_celery, wants_id, is_coroutine = self._resolve(row.task)
            args, kwargs, options = deserialize(row.args, row.kwargs, row.options)
            if wants_id:
                kwargs[OUTBOX_ID_KWARG] = row.id
            if is_celery:
                options.setdefault("task_id", row.id)
                if self._share_producer and "producer" not in options:
                    # Only for this call: the intent is built here and dropped after it.
                    producer = self._producer(task, producers)
                    if producer is not None:
                        options["producer"] = producer
            intent = Intent(
                task, tuple(args), kwargs, name=row.name, origin=row.origin, dispatch_options=options or None
            )
            reset = _current_id.set(row.id)
            try:
                if row.context:
                    with restored_context(row.context, row.name):
                        self._run(intent, is_coroutine)
                else:
                    self._run(intent, is_coroutine)
            finally:
                _current_id.reset(reset)
        except BaseException as exc:  # noqa: BLE001 - any exception a task raises is a failed attempt
            return exc
        return None

    def _dead_in_flight(self, row: ClaimedRow) -> Failure:
        self.stats.dead += 1
        text = (
            f"dead-lettered: its relay died while sending it on attempt {row.attempts - 1} of {self.max_attempts} "
            "(e.g. the task ended the process); not sent again"
        )
        logger.error(
            "airlock.outbox: %s (row %s) %s", row.name, row.id, text, extra={"airlock_outbox_id": row.id}
        )
        return Failure(row.id, text, None)

    def _failure(self, row: ClaimedRow, error: BaseException) -> Failure:
        text = "".join(traceback.format_exception_only(error)).strip()
        if row.attempts >= self.max_attempts:
            self.stats.dead += 1
            logger.error(
                "airlock.outbox: %s (row %s) dead after %d attempt(s): %s",
                row.name,
                row.id,
                row.attempts,
                text,
                extra={"airlock_outbox_id": row.id},
            )
            return Failure(row.id, text, None)
        self.stats.failed += 1
        delay = min(self.backoff_cap, self.backoff * 2 ** (row.attempts - 1)) * random.uniform(0.5, 1.0)
        logger.warning(
            "airlock.outbox: %s (row %s) failed (attempt %d of %d), retrying in %.1fs: %s",
            row.name,
            row.id,
            row.attempts,
            self.max_attempts,
            delay,
            text,
            extra={"airlock_outbox_id": row.id},
        )
        return Failure(row.id, text, utcnow() + dt.timedelta(seconds=delay))
