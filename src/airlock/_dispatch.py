"""HOW intents run: the in-process executor and the scope's dispatch loops.

There is one loop per mode (`Dispatching._dispatch_all()` and
`Dispatching._adispatch_all()`) and one way to report what happened
(`Dispatching._finish_dispatch()`). Subclasses change how ONE intent runs
by overriding `_dispatch_one()` / `_adispatch_one()`,
and WHEN the batch runs by overriding ``_dispatch_all`` / ``_adispatch_all``
and calling ``super()`` when it is time.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable
from time import perf_counter
from types import FunctionType
from typing import TYPE_CHECKING, Any

from . import _observe
from ._errors import DispatchError, UsageError
from ._intent import Intent

if TYPE_CHECKING:
    from ._lifecycle import Scope

__all__ = ["Dispatching", "execute", "report_undispatched"]

logger = _observe.logger
_debug_enabled = logger.isEnabledFor

# Methods a task-queue task has and a plain function does not (Celery,
# Dramatiq, Huey, Django tasks): running one in-process is usually a mistake.
_QUEUE_METHODS = ("apply_async", "send_with_options", "call_local", "enqueue")
# Names of the tasks already warned about: bounded, and only strings.
_warned: set[str] = set()
_WARNED_MAX = 256


def execute(intent: Intent) -> Any:
    """Run ``intent`` in-process, now: ``intent.task(*intent.args, **intent.kwargs)``.

    The default executor (``airlock._execute``), returning what the task
    returns (a coroutine function's coroutine is awaited by an ``async with``
    scope). A Django task object (not callable) runs with its ``.call()``.

    Outside tests, running a task that belongs to a task queue (it has
    ``apply_async``, ``send_with_options``, ...) in-process warns once per task
    name with a ``RuntimeWarning``: the scope was probably meant to use that
    queue's executor. "Outside tests" means the ``PYTEST_CURRENT_TEST``
    environment variable is not set (pytest sets it while a test runs).
    """
    task = intent._task
    if type(task) is not FunctionType:
        if _looks_queued(task):
            _warn_in_process(intent)
        if not callable(task):
            task = task.call
    return task(*intent._args, **intent._kwargs)


def _looks_queued(task: object) -> bool:
    return any(callable(getattr(task, name, None)) for name in _QUEUE_METHODS)


def _warn_in_process(intent: Intent) -> None:
    if "PYTEST_CURRENT_TEST" in os.environ:
        return
    task = intent._task
    key = f"{type(task).__module__}.{type(task).__qualname__}:{intent.name}"
    if key in _warned or len(_warned) >= _WARNED_MAX:
        return
    _warned.add(key)
    warnings.warn(
        f"airlock ran {intent.name} in-process with the default executor, but it is a task-queue "
        "task; configure that queue's executor (e.g. airlock.configure(executor=celery_executor)) "
        "to send it to the queue instead",
        RuntimeWarning,
        stacklevel=2,
    )


def report_undispatched(scope: Scope, exc: BaseException, intents: list[Intent], when: str) -> None:
    """Name the intents an interrupt (or a failing hook) left undispatched.

    One error record on the ``"airlock"`` logger and a note on the exception,
    which keeps propagating: an effect is never dropped without a word.
    """
    if not intents:
        return
    names = ", ".join(str(intent) for intent in intents)
    message = f"airlock: {type(exc).__name__} {when}; {len(intents)} intent(s) were not dispatched: {names}"
    logger.error(
        message,
        extra={"airlock_undispatched": list(intents), "airlock_scope_id": scope.id},
    )
    exc.add_note(message)


class Dispatching:
    """The dispatch half of [`airlock.Scope`][airlock.Scope] (a mixin; see there)."""

    _executor: Callable[[Intent], Any]
    id: int
    _origin: str | None

    def _dispatch_all(self, intents: list[Intent]) -> None:
        """Run ``intents`` now, in order, each through `_dispatch_one()`.

        Every intent is attempted; failures are logged and raised together as
        one [`DispatchError`][airlock.DispatchError]. An interrupt (``KeyboardInterrupt``,
        ``SystemExit``) propagates after naming the intents it left
        undispatched. Override to defer dispatch (e.g. until a transaction
        commits) and call ``super()._dispatch_all(intents)`` then.
        """
        failures: list[tuple[Intent, Exception]] = []
        listening = _observe.observers or _debug_enabled(10)
        started = perf_counter() if listening else 0.0
        # The default hook with the default executor: run plain functions
        # inline, one call frame per intent instead of three.
        # (The bound method, not ``self.__dict__``, answers "is it the default
        # hook, on this scope?": reading ``__dict__`` would build a dict for
        # the instance and slow every later attribute access.)
        hook = self._dispatch_one
        inline = (
            self._executor is execute
            and getattr(hook, "__func__", None) is _base_dispatch_one
            and getattr(hook, "__self__", None) is self
        )
        intent = None
        try:
            if inline:
                for intent in intents:
                    try:
                        task = intent._task
                        result = (
                            task(*intent._args, **intent._kwargs)
                            if type(task) is FunctionType
                            else execute(intent)
                        )
                        if result is not None and inspect.isawaitable(result):
                            _refuse_awaitable(intent, result)
                    except Exception as exc:
                        failures.append((intent, exc))
            else:
                for intent in intents:
                    try:
                        self._dispatch_one(intent)
                    except Exception as exc:
                        failures.append((intent, exc))
        except BaseException as exc:
            self._interrupted(exc, intents, intent, failures)
            raise
        if listening or failures:
            self._finish_dispatch(intents, failures, started if listening else None)

    async def _adispatch_all(self, intents: list[Intent]) -> None:
        """Async twin of `_dispatch_all()`: awaitables are awaited in FIFO order.

        ``asyncio.CancelledError`` is an interrupt: it propagates after naming
        the intents left undispatched.
        """
        failures: list[tuple[Intent, Exception]] = []
        listening = _observe.observers or _debug_enabled(10)
        started = perf_counter() if listening else 0.0
        intent = None
        try:
            for intent in intents:
                try:
                    await self._adispatch_one(intent)
                except Exception as exc:
                    failures.append((intent, exc))
        except BaseException as exc:
            self._interrupted(exc, intents, intent, failures)
            raise
        if listening or failures:
            self._finish_dispatch(intents, failures, started if listening else None)

    def _dispatch_one(self, intent: Intent) -> None:
        """Run one intent now (the per-intent hook of `_dispatch_all()`).

        Raise to report the intent as failed; the loop goes on with the next.
        """
        result = self._executor(intent)
        if result is not None and inspect.isawaitable(result):
            _refuse_awaitable(intent, result)

    async def _adispatch_one(self, intent: Intent) -> None:
        """Run one intent now, awaiting what it returns (the hook of `_adispatch_all()`)."""
        result = self._executor(intent)
        if result is not None and inspect.isawaitable(result):
            await result

    def _interrupted(
        self,
        exc: BaseException,
        intents: list[Intent],
        current: Intent | None,
        failures: list[tuple[Intent, Exception]],
    ) -> None:
        at = next((k for k, i in enumerate(intents) if i is current), 0)
        for intent, failure in failures:
            _log_failure(self, intent, failure)
        report_undispatched(self, exc, intents[at:], "interrupted the dispatch")  # type: ignore[arg-type]

    def _raise_failures(self, failures: list[tuple[Intent, Exception]]) -> None:
        """Log each failure and raise them together as one [`DispatchError`][airlock.DispatchError].

        For subclasses that dispatch in their own way (batching, deferring) and
        collect ``(intent, exception)`` pairs: nothing happens if there are none.
        """
        self._finish_dispatch([intent for intent, _ in failures], failures, None)

    def _finish_dispatch(
        self, intents: list[Intent], failures: list[tuple[Intent, Exception]], started: float | None
    ) -> None:
        """Report a dispatched batch; raise [`DispatchError`][airlock.DispatchError] if anything failed."""
        if started is not None:
            _observe.dispatched(
                _observe.DispatchEvent(
                    self,  # type: ignore[arg-type]
                    self.id,
                    self._origin,
                    tuple(intents),
                    tuple(failures),
                    perf_counter() - started,
                )
            )
        if failures:
            for intent, exc in failures:
                _log_failure(self, intent, exc)
            names = ", ".join(intent.name for intent, _ in failures)
            raise DispatchError(f"{len(failures)} intent(s) failed to dispatch: {names}", failures)


_base_dispatch_one = Dispatching._dispatch_one


def _log_failure(scope: Any, intent: Intent, exc: Exception) -> None:
    logger.error(
        "airlock: dispatch of %s failed (origin=%s): %r",
        intent,
        intent.origin,
        exc,
        exc_info=exc,
        extra={"airlock_intent": intent, "airlock_scope_id": scope.id},
    )


def _refuse_awaitable(intent: Intent, result: object) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()  # no "coroutine was never awaited" warning: the failure is reported instead
    raise UsageError(
        f"{intent.name} returned an awaitable, but this scope flushes synchronously; "
        "use 'async with airlock.scope()' or 'await scope.aflush()'"
    )
