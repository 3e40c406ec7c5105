"""Scopes: WHEN effects escape.

A :class:`Scope` buffers the intents enqueued while it is the innermost active
scope. When it ends it either flushes (dispatches what its policies allow, or
hands it to an enclosing scope) or discards. The lifecycle is usable
imperatively, which is what integrations do::

    scope.enter() -> code runs -> scope.exit() -> scope.should_flush(error)
                  -> scope.flush() / await scope.aflush()  or  scope.discard()

``with`` / ``async with`` run exactly that sequence.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextvars import Token
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, overload

from . import _config, _context
from ._errors import DispatchError, ScopeStateError, UsageError
from ._intent import Intent
from ._policies import PolicyProtocol, on_enqueue_hook, select_hook

__all__ = ["Scope", "scope", "scoped"]

logger = logging.getLogger("airlock")

P = ParamSpec("P")
R = TypeVar("R")

_NEW: Final = 0
_ACTIVE: Final = 1
_EXITED: Final = 2
_FLUSHED: Final = 3
_DISCARDED: Final = 4
_STATE_NAMES: Final = ("new (never entered)", "active", "exited (not yet flushed or discarded)", "flushed", "discarded")

_CO_COROUTINE: Final = inspect.CO_COROUTINE


def _is_coroutine_task(task: Callable[..., Any]) -> bool:
    code = getattr(task, "__code__", None)
    if code is not None:  # plain functions and bound methods: cheap
        return bool(code.co_flags & _CO_COROUTINE)
    if inspect.iscoroutinefunction(task):  # partials, marked callables
        return True
    call = getattr(type(task), "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


class Scope:
    """A unit of work's buffer of intents, and the decision about them.

    ``policy`` decides WHICH intents escape (default: the configured policy),
    ``executor`` HOW they run (default: the configured executor). Subclasses
    change WHEN by overriding :meth:`should_flush`, :meth:`_dispatch_all` /
    :meth:`_adispatch_all`, and how they treat a nested scope's intents with
    :meth:`before_descendant_flushes`. They never need to override
    :meth:`flush`.
    """

    __slots__ = (
        "_policy",
        "_executor",
        "_origin",
        "_state",
        "_async",
        "_parent",
        "_token",
        "_buffer",
        "_captured_ids",
        "_needs_filter",
        "_own_checks",
        "_checks",
        "__weakref__",
    )

    def __init__(
        self,
        policy: PolicyProtocol | None = None,
        *,
        executor: Callable[[Intent], Any] | None = None,
        origin: str | None = None,
    ) -> None:
        if policy is None or executor is None:
            config = _config.current()
            if policy is None:
                policy = config.policy
            else:
                _config._check_policy(policy, f"{type(self).__name__}(policy=...)")
            if executor is None:
                executor = config.executor
        else:
            _config._check_policy(policy, f"{type(self).__name__}(policy=...)")
        if not callable(executor):
            raise TypeError(f"{type(self).__name__}(executor=...) needs a callable taking an Intent, got {executor!r}")
        self._policy = policy
        self._executor = executor
        self._origin = origin
        self._state = _NEW
        self._async = False
        self._parent: Scope | None = None
        self._token: Token[Any] | None = None
        self._buffer: list[Intent] = []
        self._captured_ids: set[int] | None = None
        # Set once an intent needs more than the scope policy at flush: local
        # policies or transaction conditions. Keeps the common flush a no-op filter.
        self._needs_filter = False
        self._own_checks = tuple(self._enqueue_checks())
        self._checks = self._own_checks

    # -- read-only views --------------------------------------------------

    @property
    def policy(self) -> PolicyProtocol:
        """The policy this scope applies at enqueue and flush."""
        return self._policy

    @property
    def executor(self) -> Callable[[Intent], Any]:
        """The executor that runs the intents this scope dispatches."""
        return self._executor

    @property
    def origin(self) -> str | None:
        """Where this unit of work comes from (request path, task name); inherited from the parent."""
        return self._origin

    @property
    def parent(self) -> Scope | None:
        """The scope that was active when this one was entered, if any."""
        return self._parent

    @property
    def intents(self) -> list[Intent]:
        """Every buffered intent, own and captured, in FIFO order (a copy)."""
        return list(self._buffer)

    @property
    def own_intents(self) -> list[Intent]:
        """Intents enqueued while this scope was the innermost one."""
        captured = self._captured_ids
        if not captured:
            return list(self._buffer)
        return [i for i in self._buffer if id(i) not in captured]

    @property
    def captured_intents(self) -> list[Intent]:
        """Intents captured from nested scopes that flushed into this one."""
        captured = self._captured_ids
        if not captured:
            return []
        return [i for i in self._buffer if id(i) in captured]

    @property
    def is_active(self) -> bool:
        """Entered and not yet exited."""
        return self._state == _ACTIVE

    @property
    def is_flushed(self) -> bool:
        return self._state == _FLUSHED

    @property
    def is_discarded(self) -> bool:
        return self._state == _DISCARDED

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {_STATE_NAMES[self._state].split(' ')[0]} "
            f"policy={self._policy!r} intents={len(self._buffer)}>"
        )

    # -- extension points -------------------------------------------------

    def should_flush(self, error: BaseException | None) -> bool:
        """Whether the scope flushes on exit. Default: only when no error escaped."""
        return error is None

    def before_descendant_flushes(self, exiting_scope: Scope, intents: list[Intent]) -> list[Intent]:
        """Which of a flushing nested scope's intents may dispatch now.

        Return a list (a sub-sequence of ``intents``); the others are captured
        into this scope's buffer and wait for its own decision. Default: capture
        everything, so the outermost scope has the last word.
        """
        return []

    def _enqueue_checks(self) -> Iterable[Callable[[Intent], None]]:
        """Callables run on every intent enqueued in this scope or a nested one.

        Default: the policy's ``on_enqueue`` (unless it is the inherited no-op)
        and the executor's ``validate`` (if it has one). Subclasses may add
        their own, e.g. to tie an intent to the transaction it was made in.
        """
        hook = on_enqueue_hook(self._policy)
        if hook is not None:
            yield hook
        validate = getattr(self._executor, "validate", None)
        if validate is not None:
            yield validate

    def _dispatch_all(self, intents: list[Intent]) -> None:
        """Run ``intents`` now, in order, through the executor.

        Every intent is attempted; failures are logged and raised together as
        one :class:`DispatchError`. Override to defer dispatch (e.g. until a
        transaction commits).
        """
        executor = self._executor
        failures: list[tuple[Intent, Exception]] = []
        for intent in intents:
            try:
                result = executor(intent)
                if result is not None and inspect.isawaitable(result):
                    _close(result)
                    raise UsageError(
                        f"{intent.name} returned an awaitable, but this scope flushes synchronously; "
                        "use 'async with airlock.scope()' or 'await scope.aflush()'"
                    )
            except Exception as exc:
                failures.append((intent, exc))
        if failures:
            self._raise_failures(failures)

    async def _adispatch_all(self, intents: list[Intent]) -> None:
        """Async twin of :meth:`_dispatch_all`: awaitables are awaited in FIFO order."""
        executor = self._executor
        failures: list[tuple[Intent, Exception]] = []
        for intent in intents:
            try:
                result = executor(intent)
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception as exc:
                failures.append((intent, exc))
        if failures:
            self._raise_failures(failures)

    def _raise_failures(self, failures: list[tuple[Intent, Exception]]) -> None:
        for intent, exc in failures:
            logger.error(
                "airlock: dispatch of %s failed: %r",
                intent,
                exc,
                exc_info=exc,
                extra={"airlock_intent": intent},
            )
        names = ", ".join(intent.name for intent, _ in failures)
        raise DispatchError(f"{len(failures)} intent(s) failed to dispatch: {names}", failures)

    # -- lifecycle --------------------------------------------------------

    def enter(self) -> Scope:
        """Make this the innermost active scope of the current context."""
        if self._state != _NEW:
            raise ScopeStateError(f"cannot enter {self!r}: it is {_STATE_NAMES[self._state]}; scopes are single-use")
        parent = _context.current.get()
        if isinstance(parent, _context._Judging):
            raise UsageError("cannot open an airlock scope inside a policy callback")
        if parent is not None:
            self._parent = parent
            if self._origin is None:
                self._origin = parent._origin
            inherited = parent._checks
            if inherited:
                own = self._own_checks
                self._checks = own + tuple(c for c in inherited if c not in own) if own else inherited
        self._token = _context.current.set(self)
        self._state = _ACTIVE
        return self

    async def aenter(self) -> Scope:
        """Enter as a scope that will flush asynchronously (accepts coroutine tasks)."""
        self.enter()
        self._async = True
        return self

    def exit(self) -> None:
        """Stop being the active scope. Then call :meth:`flush` or :meth:`discard`."""
        if self._state != _ACTIVE:
            raise ScopeStateError(f"cannot exit {self!r}: it is {_STATE_NAMES[self._state]}, not active")
        token = self._token
        self._token = None
        try:
            _context.current.reset(token)  # type: ignore[arg-type]
        except ValueError:
            # Exited from another context than the one that entered (some
            # frameworks hop between them); restore the parent explicitly.
            _context.current.set(self._parent)
        self._state = _EXITED

    def flush(self) -> list[Intent]:
        """Dispatch what the policies allow; return the intents dispatched now.

        Intents that an enclosing scope captures are not dispatched by this
        scope (and not returned): they wait for the enclosing scope.
        """
        intents = self._close_for_flush()
        if intents:
            self._dispatch_all(intents)
        if self._buffer:
            self._log_end("flushed", len(intents))
        return intents

    async def aflush(self) -> list[Intent]:
        """Like :meth:`flush`, awaiting coroutine tasks and awaitable executors."""
        intents = self._close_for_flush()
        if intents:
            await self._adispatch_all(intents)
        if self._buffer:
            self._log_end("flushed", len(intents))
        return intents

    def discard(self) -> list[Intent]:
        """Drop every buffered intent (own and captured); return them."""
        self._require_exited("discard")
        self._state = _DISCARDED
        if self._buffer:
            self._log_end("discarded", 0)
        return list(self._buffer)

    # -- internals --------------------------------------------------------

    def _require_exited(self, action: str) -> None:
        if self._state != _EXITED:
            hint = " (exit() it first)" if self._state == _ACTIVE else ""
            raise ScopeStateError(f"cannot {action} {self!r}: it is {_STATE_NAMES[self._state]}{hint}")

    def _add(self, intent: Intent) -> None:
        # The hot path: called by ``enqueue`` for every intent.
        if self._state > _EXITED:
            raise ScopeStateError(
                f"cannot enqueue {intent.name} into {self!r}: it is already {_STATE_NAMES[self._state]}"
            )
        if not self._async and _is_coroutine_task(intent._task):
            raise UsageError(
                f"{intent.name} is a coroutine function, but the active scope flushes synchronously "
                "and could never await it; use 'async with airlock.scope()'"
            )
        if self._checks or intent._local_policies:
            self._judge(intent)
        self._buffer.append(intent)

    def _judge(self, intent: Intent) -> None:
        token = _context.current.set(_context._Judging(self))
        try:
            for local in reversed(intent._local_policies):
                local.on_enqueue(intent)
            for check in self._checks:
                check(intent)
        finally:
            _context.current.reset(token)
        if intent._local_policies or intent._conditions:
            self._needs_filter = True

    def _close_for_flush(self) -> list[Intent]:
        self._require_exited("flush")
        self._state = _FLUSHED
        buffer = self._buffer
        if not buffer:
            return []
        select = select_hook(self._policy)
        if select is None and not self._needs_filter:
            selected = buffer[:]
        else:
            token = _context.current.set(_context._Judging(self))
            try:
                selected = self._filter(buffer) if self._needs_filter else buffer[:]
                if select is not None:
                    selected = _checked_subsequence(select(selected), selected, "select")
            finally:
                _context.current.reset(token)
        parent = self._parent
        if parent is not None:
            selected = self._hand_to_ancestors(parent, selected)
        return selected

    def _filter(self, intents: list[Intent]) -> list[Intent]:
        captured = self._captured_ids or ()
        kept = []
        for intent in intents:
            if intent._conditions and not all(alive() for alive in intent._conditions):
                continue  # its transaction rolled back: the intent never happened
            if intent._local_policies and id(intent) not in captured and not intent.passes_local_policies():
                continue
            kept.append(intent)
        return kept

    def _hand_to_ancestors(self, ancestor: Scope | None, intents: list[Intent]) -> list[Intent]:
        while intents and ancestor is not None:
            allowed = ancestor.before_descendant_flushes(self, intents)
            if type(allowed) is not list:
                raise TypeError(
                    f"{type(ancestor).__name__}.before_descendant_flushes() must return a list of intents, "
                    f"got {type(allowed).__name__}"
                )
            if allowed:
                allowed = _checked_subsequence(allowed, intents, "before_descendant_flushes")
                allowed_ids = {id(i) for i in allowed}
                ancestor._capture([i for i in intents if id(i) not in allowed_ids], self)
            else:
                ancestor._capture(intents, self)
            intents = allowed
            ancestor = ancestor._parent
        return intents

    def _capture(self, intents: list[Intent], descendant: Scope) -> None:
        if not intents:
            return
        if self._state > _EXITED:
            raise ScopeStateError(
                f"{descendant!r} flushed {len(intents)} intent(s) into its enclosing {self!r}, "
                f"which is already {_STATE_NAMES[self._state]}: they cannot be captured"
            )
        self._buffer.extend(intents)
        captured = self._captured_ids
        if captured is None:
            captured = self._captured_ids = set()
        captured.update(map(id, intents))
        if descendant._needs_filter:
            self._needs_filter = True

    def _log_end(self, outcome: str, dispatched: int) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "airlock: %s %s: %d buffered (%d captured), %d dispatched",
                type(self).__name__,
                outcome,
                len(self._buffer),
                len(self._captured_ids or ()),
                dispatched,
                extra={"airlock_outcome": outcome, "airlock_buffered": len(self._buffer), "airlock_dispatched": dispatched},
            )

    # -- context manager protocol ------------------------------------------

    def __enter__(self) -> Scope:
        return self.enter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.exit()
        if self.should_flush(exc):
            self.flush()
        else:
            self.discard()

    async def __aenter__(self) -> Scope:
        return await self.aenter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.exit()
        if self.should_flush(exc):
            await self.aflush()
        else:
            self.discard()


def _checked_subsequence(chosen: list[Intent], offered: list[Intent], hook: str) -> list[Intent]:
    if type(chosen) is not list:
        raise TypeError(f"{hook}() must return a list of intents, got {type(chosen).__name__}")
    if len(chosen) == len(offered) and all(a is b for a, b in zip(chosen, offered)):
        return chosen
    offered_ids = {id(i) for i in offered}
    chosen_ids = {id(i) for i in chosen}
    if not chosen_ids <= offered_ids:
        raise UsageError(f"{hook}() returned intents it was not given; it may only filter")
    # Keep FIFO order whatever order the hook returned.
    return [i for i in offered if id(i) in chosen_ids]


def _close(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


def scope(policy: PolicyProtocol | None = None, *, _cls: type[Scope] | None = None, **scope_kwargs: Any) -> Scope:
    """A new scope, used as ``with airlock.scope() as s:`` or ``async with``.

    Arguments left out come from :func:`airlock.configure`: the scope class,
    the policy, the executor, and the scope keyword arguments (the configured
    ones apply to the configured class and its subclasses; explicit ones win).
    """
    config = _config.current()
    cls = config.scope_cls if _cls is None else _cls
    defaults = config.scope_kwargs
    if defaults and (_cls is None or issubclass(cls, config.scope_cls)):
        scope_kwargs = {**defaults, **scope_kwargs}
    return cls(policy, **scope_kwargs)


@overload
def scoped(func: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def scoped(
    policy: PolicyProtocol | None = None, /, *, _cls: type[Scope] | None = None, **scope_kwargs: Any
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def scoped(*args: Any, **kwargs: Any) -> Any:
    """Run each call of the decorated function in a fresh scope.

    Works on plain and ``async def`` functions, spelled ``@airlock.scoped`` or
    ``@airlock.scoped(policy, _cls=..., **scope_kwargs)`` with the arguments of
    :func:`scope`.
    """
    if len(args) == 1 and not kwargs and _is_decoratable(args[0]):
        return _decorate(args[0], None, None, {})
    if len(args) > 1:
        raise TypeError("scoped() takes at most one positional argument (the policy)")
    policy = args[0] if args else kwargs.pop("policy", None)
    cls = kwargs.pop("_cls", None)

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        if not callable(func):
            raise TypeError(f"@airlock.scoped(...) decorates a function, got {func!r}")
        return _decorate(func, policy, cls, kwargs)

    return decorator


def _is_decoratable(obj: object) -> bool:
    # ``@scoped`` without parentheses receives the function; ``@scoped(p)``
    # receives a policy. Policies have on_enqueue/allows, functions do not.
    return callable(obj) and not (hasattr(obj, "on_enqueue") and hasattr(obj, "allows"))


def _decorate(
    func: Callable[..., Any], policy: PolicyProtocol | None, cls: type[Scope] | None, kwargs: dict[str, Any]
) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async_in_scope(*a: Any, **kw: Any) -> Any:
            async with scope(policy, _cls=cls, **kwargs):
                return await func(*a, **kw)

        return run_async_in_scope

    @functools.wraps(func)
    def run_in_scope(*a: Any, **kw: Any) -> Any:
        with scope(policy, _cls=cls, **kwargs):
            return func(*a, **kw)

    return run_in_scope


_config.reset_configuration()
