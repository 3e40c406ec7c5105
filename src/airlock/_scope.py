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
import itertools
from collections.abc import Callable, Iterable
from contextvars import Token
from time import perf_counter
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, overload

from . import _config, _context, _observe
from ._errors import DispatchError, ScopeStateError, UsageError
from ._intent import Intent, _Meta
from ._policies import PolicyProtocol, on_enqueue_hook, select_hook
from .integrations.executors.sync import sync_executor

__all__ = ["Scope", "scope", "scoped"]

logger = _observe.logger

P = ParamSpec("P")
R = TypeVar("R")

_NEW: Final = 0
_ACTIVE: Final = 1
_EXITED: Final = 2
_FLUSHED: Final = 3
_DISCARDED: Final = 4
_STATES: Final = ("new (never entered)", "active", "exited (not yet flushed or discarded)", "flushed", "discarded")

_CO_COROUTINE: Final = inspect.CO_COROUTINE
_ids = itertools.count(1)
# One-entry memos: nearly every scope uses the configured policy and executor,
# so their hooks are worked out once, not once per scope.
_checks_memo: tuple[object, object, tuple[Callable[[Intent], None], ...]] = (None, None, ())
_selector_memo: tuple[object, Callable[[list[Intent]], list[Intent]] | None] = (None, None)
# The "airlock" logger's level cache (filled and cleared by logging itself):
# a dict lookup tells whether DEBUG records would be emitted, without a call.
_level_cache = _observe._level_cache
_DEBUG: Final = 10
_get_current = _context.current.get
_set_current = _context.current.set
_reset_current = _context.current.reset


def _is_coroutine_callable(task: Callable[..., Any]) -> bool:
    # The slow path of the enqueue-time check: partials, callable objects,
    # functions marked with inspect.markcoroutinefunction.
    resolve = getattr(type(task), "_get_current_object", None)
    if resolve is not None:
        # A local proxy (Celery's task proxies, werkzeug's LocalProxy) forwards
        # calls to the object it stands for: judge that object. Asking the
        # proxy itself costs a forwarded attribute miss per inspect probe.
        task = resolve(task)
    if inspect.iscoroutinefunction(task):
        return True
    call = getattr(type(task), "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


class Scope:
    """A unit of work's buffer of intents, and the decision about them.

    ``policy`` decides WHICH intents escape, ``executor`` HOW they run (both
    default to :func:`airlock.configure`'s), ``origin`` says where the unit of
    work comes from (a request path, a task name) and is recorded on every
    intent enqueued in it; nested scopes inherit it.

    Subclasses change WHEN by overriding :meth:`should_flush`,
    :meth:`_dispatch_all` / :meth:`_adispatch_all`, how they treat a nested
    scope's intents with :meth:`before_descendant_flushes`, and what is checked
    at enqueue with :meth:`enqueue_checks`. They never need to override
    :meth:`flush`.
    """

    # Class-level defaults: a scope only stores what differs from them, which
    # keeps creating one (once per request, task or test) cheap.
    _state = _NEW
    _async = False
    _parent: Scope | None = None
    _token: Token[Any] | None = None
    # Resolved from the policy/executor at first use (an empty scope never pays):
    _checks: tuple[Callable[[Intent], None], ...] | None = None
    _selector: Callable[[list[Intent]], list[Intent]] | None | bool = False
    _captured_ids: set[int] | None = None
    _needs_filter = False  # some intent has local policies or transaction conditions
    _origin: str | None = None
    _shared_meta: _Meta | None = None  # the origin-only metadata every plain intent here shares
    _id: int | None = None

    def __init__(
        self,
        policy: PolicyProtocol | None = None,
        *,
        executor: Callable[[Intent], Any] | None = None,
        origin: str | None = None,
    ) -> None:
        config = _config._snapshot
        if policy is None:
            policy = config.policy
        elif isinstance(policy, type) or not hasattr(policy, "allows"):
            _config._check_policy(policy, f"{type(self).__name__}(policy=...)")
        if executor is None:
            executor = config.executor
        elif not callable(executor):
            raise TypeError(f"{type(self).__name__}(executor=...) needs a callable taking an Intent, got {executor!r}")
        self._policy = policy
        self._executor = executor
        self._buffer: list[Intent] = []
        # Read by every enqueue: stored on the instance, where lookups are fastest.
        self._async = False
        self._shared_meta: _Meta | None = None
        if origin is not None:
            self._origin = origin

    # -- read-only views --------------------------------------------------

    @property
    def id(self) -> int:
        """A process-unique number for log records and traces."""
        if self._id is None:
            self._id = next(_ids)
        return self._id

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
        """Where this unit of work comes from (request path, task name); inherited when nested."""
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
        """``flush()`` has run."""
        return self._state == _FLUSHED

    @property
    def is_discarded(self) -> bool:
        """``discard()`` has run."""
        return self._state == _DISCARDED

    def __repr__(self) -> str:
        state = _STATES[self._state].split(" ")[0]
        return f"<{type(self).__name__} {state} policy={self._policy!r} intents={len(self._buffer)}>"

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

    def enqueue_checks(self) -> Iterable[Callable[[Intent], None]]:
        """Callables run on every intent enqueued in this scope or a nested one.

        Default: the policy's ``on_enqueue`` (unless it is the inherited no-op)
        and the executor's ``validate`` (if it has one). Subclasses may add
        their own, e.g. to tie an intent to the transaction it was made in.
        """
        global _checks_memo
        policy, executor = self._policy, self._executor
        memo = _checks_memo
        if memo[0] is policy and memo[1] is executor:
            return memo[2]  # the usual case: every scope uses the configured pair
        checks = []
        hook = on_enqueue_hook(policy)
        if hook is not None:
            checks.append(hook)
        validate = getattr(executor, "validate", None)
        if validate is not None:
            checks.append(validate)
        _checks_memo = (policy, executor, tuple(checks))
        return checks

    def _dispatch_all(self, intents: list[Intent]) -> None:
        """Run ``intents`` now, in order, through the executor.

        Every intent is attempted; failures are logged and raised together as
        one :class:`DispatchError`. Override to defer dispatch (e.g. until a
        transaction commits) and call ``super()._dispatch_all`` then.
        """
        executor = self._executor
        failures: list[tuple[Intent, Exception]] = []
        listening = _observe.observers or _level_cache.get(_DEBUG)
        if listening is None:
            listening = _observe.listening()
        started = perf_counter() if listening else 0.0
        for intent in intents:
            try:
                self._dispatch_one(intent)
            except Exception as exc:
                failures.append((intent, exc))
        if listening or failures:
            self._finish_dispatch(intents, failures, started if listening else None)

    async def _adispatch_all(self, intents: list[Intent]) -> None:
        """Async twin of :meth:`_dispatch_all`: awaitables are awaited in FIFO order."""
        executor = self._executor
        failures: list[tuple[Intent, Exception]] = []
        listening = _observe.observers or _level_cache.get(_DEBUG)
        if listening is None:
            listening = _observe.listening()
        started = perf_counter() if listening else 0.0
        for intent in intents:
            try:
                await self._adispatch_one(intent)
            except Exception as exc:
                failures.append((intent, exc))
        if listening or failures:
            self._finish_dispatch(intents, failures, started if listening else None)

    def _dispatch_one(self, intent: Intent) -> None:
        """Run one intent now (the per-intent hook of :meth:`_dispatch_all`).

        Raise to report the intent as failed; the loop goes on with the next.
        """
        executor = self._executor
        task = intent._task
        if executor is sync_executor and callable(task):  # the default: skip one call frame
            result = task(*intent._args, **intent._kwargs)
        else:
            result = executor(intent)
        if result is not None and inspect.isawaitable(result):
            _close(result)
            raise UsageError(
                f"{intent.name} returned an awaitable, but this scope flushes synchronously; "
                "use 'async with airlock.scope()' or 'await scope.aflush()'"
            )

    async def _adispatch_one(self, intent: Intent) -> None:
        """Run one intent now, awaiting what it returns (the hook of :meth:`_adispatch_all`)."""
        result = self._executor(intent)
        if result is not None and inspect.isawaitable(result):
            await result

    def _raise_failures(self, failures: list[tuple[Intent, Exception]]) -> None:
        """Log each failure and raise them together as one :class:`DispatchError`.

        For subclasses that dispatch in their own way (batching, deferring) and
        collect ``(intent, exception)`` pairs: nothing happens if there are none.
        """
        self._finish_dispatch([intent for intent, _ in failures], failures, None)

    def _finish_dispatch(
        self, intents: list[Intent], failures: list[tuple[Intent, Exception]], started: float | None
    ) -> None:
        """Report a dispatched batch; raise :class:`DispatchError` if anything failed."""
        if started is not None:
            _observe.dispatched(
                _observe.DispatchEvent(
                    self, self.id, self._origin, tuple(intents), tuple(failures), perf_counter() - started
                )
            )
        if failures:
            for intent, exc in failures:
                logger.error(
                    "airlock: dispatch of %s failed (origin=%s): %r",
                    intent,
                    intent.origin,
                    exc,
                    exc_info=exc,
                    extra={"airlock_intent": intent, "airlock_scope_id": self.id},
                )
            names = ", ".join(intent.name for intent, _ in failures)
            raise DispatchError(f"{len(failures)} intent(s) failed to dispatch: {names}", failures)

    # -- lifecycle --------------------------------------------------------

    def enter(self) -> Scope:
        """Make this the innermost active scope of the current context."""
        if self._state:
            raise ScopeStateError(f"cannot enter {self!r}: it is {_STATES[self._state]}; scopes are single-use")
        parent = _get_current()
        if parent is not None:
            if type(parent) is _context._Judging:
                raise UsageError("cannot open an airlock scope inside a policy callback")
            self._parent = parent  # type: ignore[assignment]
            if self._origin is None:
                self._origin = parent._origin
            if parent._async:
                # Its intents are captured by an async ancestor by default, which
                # can await coroutine tasks; a sync flush that would have to run
                # one itself reports it as a failure instead of dropping it.
                self._async = True
        if self._origin is not None:
            self._shared_meta = _Meta(origin=self._origin)
        self._token = _set_current(self)
        self._state = _ACTIVE
        return self

    __enter__ = enter

    async def aenter(self) -> Scope:
        """Enter as a scope that will flush asynchronously (accepts coroutine tasks)."""
        self.enter()
        self._async = True
        return self

    def exit(self) -> None:
        """Stop being the active scope. Then call :meth:`flush` or :meth:`discard`."""
        if self._state != _ACTIVE:
            raise ScopeStateError(f"cannot exit {self!r}: it is {_STATES[self._state]}, not active")
        try:
            _reset_current(self._token)  # type: ignore[arg-type]
        except ValueError:
            # Exited from another context than the one that entered it (some
            # frameworks hop between them): restore the parent explicitly.
            _set_current(self._parent)
        self._state = _EXITED

    def flush(self) -> list[Intent]:
        """Dispatch what the policies allow; return the intents dispatched now.

        Intents that an enclosing scope captures are not dispatched by this
        scope (and not returned): they wait for the enclosing scope.
        """
        if self._state != _EXITED:
            self._wrong_state("flush")
        self._state = _FLUSHED
        if not self._buffer:
            return []
        intents = self._select()
        if intents:
            self._dispatch_all(intents)
        return intents

    async def aflush(self) -> list[Intent]:
        """Like :meth:`flush`, awaiting coroutine tasks and awaitable executors."""
        if self._state != _EXITED:
            self._wrong_state("flush")
        self._state = _FLUSHED
        if not self._buffer:
            return []
        intents = self._select()
        if intents:
            await self._adispatch_all(intents)
        return intents

    def discard(self) -> list[Intent]:
        """Drop every buffered intent (own and captured); return them."""
        if self._state != _EXITED:
            self._wrong_state("discard")
        self._state = _DISCARDED
        dropped = list(self._buffer)
        if dropped and _observe.listening():
            _observe.scope_ended(
                _observe.ScopeEndEvent(self, self.id, "discarded", self._origin, (), tuple(dropped), ())
            )
        return dropped

    def end(self, error: BaseException | None = None, *, flush: bool = True) -> list[Intent]:
        """The one end-of-life path: :meth:`exit`, decide, then :meth:`flush` or :meth:`discard`.

        The scope flushes when ``flush`` is true (an integration's own rule,
        e.g. "the response status is below 400") and :meth:`should_flush`
        agrees for ``error``. A ``should_flush`` that raises leaves the scope
        discarded and the exception propagating. Returns what was dispatched
        (or handed to an enclosing scope); ``[]`` when discarded.
        """
        self.exit()
        if self._decide(error, flush):
            return self.flush()
        self.discard()
        return []

    async def aend(self, error: BaseException | None = None, *, flush: bool = True) -> list[Intent]:
        """Async twin of :meth:`end`: flushes with :meth:`aflush`."""
        self.exit()
        if self._decide(error, flush):
            return await self.aflush()
        self.discard()
        return []

    def _decide(self, error: BaseException | None, flush: bool) -> bool:
        if not flush:
            return False
        try:
            return bool(self.should_flush(error))
        except BaseException:
            self.discard()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end(exc)

    async def __aenter__(self) -> Scope:
        return await self.aenter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aend(exc)

    # -- internals --------------------------------------------------------

    def _wrong_state(self, action: str) -> None:
        hint = " (exit() it first)" if self._state == _ACTIVE else ""
        raise ScopeStateError(f"cannot {action} {self!r}: it is {_STATES[self._state]}{hint}")

    def _refuse(self, intent: Intent) -> None:
        raise ScopeStateError(f"cannot enqueue {intent.name} into {self!r}: it is already {_STATES[self._state]}")

    def _resolve_checks(self) -> tuple[Callable[[Intent], None], ...]:
        memo = _checks_memo
        if memo[0] is self._policy and memo[1] is self._executor and type(self).enqueue_checks is _base_checks:
            own = memo[2]  # the usual case: the configured policy and executor, no subclass checks
        else:
            own = tuple(self.enqueue_checks())
        parent = self._parent
        if parent is not None:
            inherited = parent._checks if parent._checks is not None else parent._resolve_checks()
            own += tuple(check for check in inherited if check not in own)
        self._checks = own
        return own

    def _judge(self, intent: Intent, checks: tuple[Callable[[Intent], None], ...]) -> None:
        token = _set_current(_context._Judging(self))
        try:
            for local in reversed(intent.local_policies):
                local.on_enqueue(intent)
            for check in checks:
                check(intent)
        finally:
            _reset_current(token)
        meta = intent._meta
        if meta is not None and (meta.local_policies or meta.conditions):
            self._needs_filter = True

    def _select(self) -> list[Intent]:
        """The buffered intents this flush dispatches now; hands the rest on."""
        global _selector_memo
        buffer = self._buffer
        select = self._selector
        if select is False:
            memo = _selector_memo
            if memo[0] is self._policy:
                select = memo[1]
            else:
                select = select_hook(self._policy)
                _selector_memo = (self._policy, select)
            self._selector = select
        if select is None and not self._needs_filter:
            selected = buffer[:]
        else:
            token = _set_current(_context._Judging(self))
            try:
                selected = self._filter(buffer) if self._needs_filter else buffer[:]
                if select is not None and selected:
                    selected = _checked_subsequence(select(selected), selected, "select")  # type: ignore[operator]
            finally:
                _reset_current(token)
        listening = _observe.observers or _level_cache.get(_DEBUG)
        if listening is None:
            listening = _observe.listening()
        if listening:
            kept = {id(i) for i in selected}
            dropped = tuple(i for i in buffer if id(i) not in kept)
        now = self._hand_to_ancestors(selected) if self._parent is not None and selected else selected
        if listening:
            now_ids = {id(i) for i in now}
            captured = tuple(i for i in selected if id(i) not in now_ids)
            _observe.scope_ended(
                _observe.ScopeEndEvent(self, self.id, "flushed", self._origin, tuple(now), dropped, captured)
            )
        return now

    def _filter(self, intents: list[Intent]) -> list[Intent]:
        captured = self._captured_ids or ()
        kept = []
        for intent in intents:
            meta = intent._meta
            if meta is not None:
                if meta.conditions and not all(alive() for alive in meta.conditions):
                    continue  # its transaction rolled back: the intent never happened
                if meta.local_policies and id(intent) not in captured and not intent.passes_local_policies():
                    continue  # local policies judge once, in the scope the intent was made in
            kept.append(intent)
        return kept

    def _hand_to_ancestors(self, intents: list[Intent]) -> list[Intent]:
        ancestor = self._parent
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
                f"which is already {_STATES[self._state]}: they cannot be captured"
            )
        self._buffer.extend(intents)
        if self._captured_ids is None:
            self._captured_ids = set()
        self._captured_ids.update(map(id, intents))
        if descendant._needs_filter:
            self._needs_filter = True


_base_checks = Scope.enqueue_checks


def _checked_subsequence(chosen: list[Intent], offered: list[Intent], hook: str) -> list[Intent]:
    if type(chosen) is not list:
        raise TypeError(f"{hook}() must return a list of intents, got {type(chosen).__name__}")
    if len(chosen) == len(offered) and all(a is b for a, b in zip(chosen, offered)):
        return chosen
    offered_ids = {id(i) for i in offered}
    chosen_ids = {id(i) for i in chosen}
    if not chosen_ids <= offered_ids:
        raise UsageError(f"{hook}() returned intents it was not given; it may only filter")
    return [i for i in offered if id(i) in chosen_ids]  # FIFO, whatever order it returned


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
    config = _config._snapshot
    cls = config.scope_cls if _cls is None else _cls
    defaults = config.scope_kwargs
    if defaults and (_cls is None or issubclass(cls, config.scope_cls)):
        scope_kwargs = {**defaults, **scope_kwargs}
    return cls(policy, **scope_kwargs) if scope_kwargs else cls(policy)


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
    if args and "policy" in kwargs:
        raise TypeError("scoped() got the policy both positionally and as policy=")
    policy = args[0] if args else kwargs.pop("policy", None)
    if policy is not None:
        _config._check_policy(policy, "@airlock.scoped(policy)")
    cls = kwargs.pop("_cls", None)

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        if not callable(func):
            raise TypeError(f"@airlock.scoped(...) decorates a function, got {func!r}")
        return _decorate(func, policy, cls, kwargs)

    return decorator


def _is_decoratable(obj: object) -> bool:
    # ``@scoped`` without parentheses receives the function; ``@scoped(p)``
    # receives a policy. Policies have on_enqueue/allows, functions do not.
    return callable(obj) and not isinstance(obj, type) and not hasattr(obj, "allows")


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
