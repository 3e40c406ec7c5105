"""The [`Scope`][airlock.Scope]: a unit of work's buffer of intents, its lifecycle and nesting.

Lifecycle, usable imperatively (integrations do):

    scope.enter() -> code runs, intents buffered -> scope.end(error)
    (end = exit() -> should_flush(error) -> flush() or discard())

``with`` / ``async with`` and every integration go through [`Scope.end()`][airlock.Scope.end]
/ [`Scope.aend()`][airlock.Scope.aend], the one end-of-life path.

Concurrency: a scope may be shared by several threads (``carry_context``).
An ``enqueue`` racing the scope's flush either lands in that flush or raises
[`ScopeStateError`][airlock.ScopeStateError], without a lock on the common path. The
flush first changes the state, then appends a seal marker to the buffer (one
atomic ``list.append``); it takes what is before the marker. An enqueue
appends, then reads the state: if the scope is still open, its intent is
before any marker; if not, it looks for the marker. No marker yet, or the
marker after its intent: the flush takes it. Marker before its intent: it
takes the intent back out and raises.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from contextvars import Token
from types import TracebackType
from typing import Any, ClassVar, Final

from . import _config, _context, _observe
from ._dispatch import Dispatching, execute, report_undispatched
from ._errors import ScopeStateError, UsageError
from ._intent import Intent, _Meta
from ._judge import (
    _ALLOWS_EVERYTHING,
    asks_on_enqueue,
    checked_subsequence,
    distinct,
    judge,
    selector,
)
from ._policies import AllowAll, check_policy
from ._protocols import Policy

__all__ = ["Scope"]

_NEW: Final = 0
_ACTIVE: Final = 1
_EXITED: Final = 2
_FLUSHED: Final = 3
_DISCARDED: Final = 4
_STATES: Final = (
    "new (never entered)",
    "active",
    "exited (not yet flushed or discarded)",
    "flushed",
    "discarded",
)

_ids = itertools.count(1)
_get_current = _context.current.get
_set_current = _context.current.set
_reset_current = _context.current.reset
_debug_enabled = _observe.logger.isEnabledFor
#: Serialises the (rare) enqueues that race a flush while they look for the
#: seal and take their intent back out. Guards no user object.
_late_lock = threading.Lock()
#: The seal marker a flush/discard appends to a buffer (never handed out).
_SEAL: Final[Intent] = object.__new__(Intent)
#: No task yet (``None`` is a task that must fail the checks).
_NO_TASK: Final = object()
#: The policy of scopes when none was given or configured.
_DEFAULT_POLICY: Final = AllowAll()


class Scope(Dispatching):
    """A unit of work's buffer of intents, and the decision about them.

    ``policy`` decides WHICH intents escape, ``executor`` HOW they run (both
    default to [`airlock.configure()`][airlock.configure]'s, else ``AllowAll()`` and the
    in-process ``airlock._execute``), ``origin`` says where the unit of work
    comes from (a request path, a task name) and is recorded on every intent
    enqueued in it; nested scopes inherit it.

    Subclasses change WHEN by overriding [`should_flush()`][airlock.Scope.should_flush],
    `_dispatch_all()` / `_adispatch_all()` (defer) or the per-intent
    `_dispatch_one()` / `_adispatch_one()`, how they treat a nested
    scope's intents with [`before_descendant_flushes()`][airlock.Scope.before_descendant_flushes], what is checked at
    enqueue with [`enqueue_checks()`][airlock.Scope.enqueue_checks], and what happens to each enqueued
    intent with `_add()`. They never need to override [`flush()`][airlock.Scope.flush].
    """

    #: When true, this scope's flush is final for its intents: every enclosing
    #: scope's policy still judges them (``allows``, once per distinct
    #: instance), but no enclosing scope captures them. For scopes that hand
    #: intents to something durable themselves (the outbox).
    dispatches_own_intents: ClassVar[bool] = False

    # Class-level defaults: a scope only stores what differs from them, which
    # keeps creating one (once per request, task or test) cheap.
    _state = _NEW
    _async = False  # entered with ``async with`` / aenter()
    _awaits = False  # coroutine tasks enqueued here will be awaited
    _last_task: object = _NO_TASK  # the last task that passed enqueue's per-task checks here
    _parent: Scope | None = None
    _token: Token[Any] | None = None
    _checks: tuple[Callable[[Intent], None], ...] | None = None  # resolved at the first enqueue
    _asked: tuple[Any, ...] = ()  # the scope policies whose on_enqueue is in _checks
    _captured: dict[int, tuple[Any, ...]] | None = None  # id(intent) -> policies it passed through
    _needs_filter = False  # some intent has local policies or conditions
    _has_local = False  # some intent has local policies (judged per intent at flush)
    _sealed = 0  # where the seal marker is, once flush/discard sealed the buffer
    _origin: str | None = None
    _shared_meta: _Meta | None = None  # the origin-only metadata every plain intent here shares
    _guard: _context._Judging | None = None
    _unguarded = False  # every check in _checks is the library's own (see _resolve_checks)
    _inline = False  # enqueue may do _judge_and_add's work itself (see _resolve_checks)
    _id: int | None = None

    def __init__(
        self,
        policy: Policy | None = None,
        executor: Callable[[Intent], Any] | None = None,
        *,
        origin: str | None = None,
    ) -> None:
        config = _config._snapshot
        if policy is None:
            policy = config.policy
            if policy is None:
                policy = _DEFAULT_POLICY
        else:
            check_policy(policy, f"{type(self).__name__}(policy=...)")
        if executor is None:
            executor = config.executor
            if executor is None:
                executor = execute
        elif not callable(executor):
            raise TypeError(
                f"{type(self).__name__}(executor=...) needs a callable taking an Intent, got {executor!r}"
            )
        if origin is not None and not isinstance(origin, str):
            raise TypeError(f"{type(self).__name__}(origin=...) must be a str, got {origin!r}")
        # Everything ``enqueue`` and the lifecycle read lives on the instance,
        # set here in a fixed order: CPython 3.11 specialises instance-attribute
        # reads, not reads of class-level defaults through an instance.
        self._state = _NEW
        self._origin = origin
        self._policy = policy
        self._executor = executor
        self._buffer: list[Intent] = []
        self._shared_meta = None
        self._last_task = _NO_TASK
        self._checks = None

    # -- read-only views --------------------------------------------------

    @property
    def id(self) -> int:  # type: ignore[override]
        """A process-unique number for log records and traces."""
        if self._id is None:
            self._id = next(_ids)
        return self._id

    @property
    def policy(self) -> Policy:
        """The policy this scope applies at enqueue and at dispatch."""
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

    def _held(self) -> list[Intent]:
        """The buffered intents (a copy): once sealed, what is before the seal."""
        buffer = self._buffer
        return buffer[: self._sealed] if self._state > _EXITED else buffer[:]

    @property
    def intents(self) -> list[Intent]:
        """Every buffered intent, own and captured, in FIFO order (a copy)."""
        return self._held()

    @property
    def own_intents(self) -> list[Intent]:
        """Intents enqueued while this scope was the innermost one."""
        captured = self._captured
        if not captured:
            return self._held()
        return [i for i in self._held() if id(i) not in captured]

    @property
    def captured_intents(self) -> list[Intent]:
        """Intents captured from nested scopes that flushed into this one."""
        captured = self._captured
        if not captured:
            return []
        return [i for i in self._held() if id(i) in captured]

    @property
    def is_active(self) -> bool:
        """True while this is the innermost active scope of the calling context."""
        if self._state != _ACTIVE:
            return False
        current = _get_current()
        return current is self or (type(current) is _context._Judging and current.scope is self)

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
        return f"<{type(self).__name__} {state} policy={self._policy!r} intents={len(self._held())}>"

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

        Default: the executor's ``validate`` (if it has one). Subclasses may add
        their own (call ``super().enqueue_checks()``), e.g. to tie an intent to
        the transaction it was made in with [`Intent.add_condition()`][airlock.Intent.add_condition].
        Asked once per scope, at its first enqueue. (Policies are not checks:
        the scope asks their ``on_enqueue`` itself.)
        """
        executor = self._executor
        validate = None if executor is execute else getattr(executor, "validate", None)
        return (validate,) if validate is not None else ()

    def _add(self, intent: Intent) -> None:
        """Buffer ``intent`` (already judged): the hook every enqueued intent passes through.

        Override to observe or redirect intents, calling ``super()._add(intent)``
        to keep them. Also usable imperatively on a scope that was never
        entered; ``flush()`` then acts on what was added.
        """
        if self._state > _EXITED:
            self._refuse(intent)
        self._buffer.append(intent)
        if self._state > _EXITED:
            self._late([intent])

    # -- lifecycle --------------------------------------------------------

    def enter(self) -> Scope:
        """Make this the innermost active scope of the current context."""
        if self._state:
            if self._state == _ACTIVE:
                raise ScopeStateError(f"cannot enter {self!r}: it is already active; scopes are single-use")
            raise ScopeStateError(
                f"cannot enter {self!r}: it is {_STATES[self._state]}; scopes are single-use"
            )
        parent = _get_current()
        if parent is not None:
            if type(parent) is _context._Judging:
                raise UsageError("cannot open an airlock scope inside a policy callback")
            self._parent = parent  # type: ignore[assignment]
            if self._origin is None:
                self._origin = parent._origin
            self._awaits = self._computed_awaits()
            self._last_task = _NO_TASK
        if self._origin is not None:
            self._shared_meta = _Meta(origin=self._origin)
        self._token = _set_current(self)
        self._state = _ACTIVE
        return self

    __enter__ = enter

    async def aenter(self) -> Scope:
        """Enter as a scope that flushes asynchronously (it can await coroutine tasks)."""
        self.enter()
        self._async = True
        self._awaits = self._computed_awaits()
        self._last_task = _NO_TASK  # checked again against the new answer
        return self

    def _computed_awaits(self) -> bool:
        # Whether every scope that could end up dispatching this scope's
        # intents awaits: this one if it dispatches its own or has no parent
        # (or the parent may let intents through), and then the parent's.
        parent = self._parent
        awaits = self._async and not self._defers_sync_only()
        if parent is None or self.dispatches_own_intents:
            return awaits
        captures_all = type(parent).before_descendant_flushes is _base_before_descendant_flushes
        return parent._awaits and (captures_all or awaits)

    def exit(self) -> None:
        """Stop being the active scope. Then [`flush()`][airlock.Scope.flush] or [`discard()`][airlock.Scope.discard] (or use [`end()`][airlock.Scope.end]).

        Only the innermost active scope of the context that entered it can
        exit; anything else is a [`ScopeStateError`][airlock.ScopeStateError] that leaves
        every context's active scope as it was.
        """
        if self._state != _ACTIVE:
            raise ScopeStateError(f"cannot exit {self!r}: it is {_STATES[self._state]}, not active")
        current = _get_current()
        if current is not self:
            if current is not None and type(current) is not _context._Judging and _is_ancestor(self, current):
                raise ScopeStateError(
                    f"cannot exit {self!r}: the scope {current!r} it encloses is still active; exit that first"
                )
            raise ScopeStateError(
                f"cannot exit {self!r}: it is not the innermost active scope of this context "
                "(exit it where it was entered)"
            )
        try:
            _reset_current(self._token)  # type: ignore[arg-type]
        except (ValueError, RuntimeError):
            raise ScopeStateError(
                f"cannot exit {self!r} from a different context than the one that entered it"
            ) from None
        self._state = _EXITED

    def flush(self) -> list[Intent]:
        """Dispatch what the policies allow; return the intents dispatched now.

        Intents that an enclosing scope captures are not dispatched by this
        scope (and not returned): they wait for the enclosing scope.
        """
        # _seal(), inlined for the scope that ends every request and task.
        state = self._state
        if state != _EXITED and state != _NEW:
            self._wrong_state("flush")
        self._state = _FLUSHED
        buffer = self._buffer
        buffer.append(_SEAL)
        k = len(buffer) - 1
        if not k:
            return []
        intents = self._taken(buffer, k)
        now = self._route(intents)
        if now:
            self._dispatch_all(now)
        return now

    async def aflush(self) -> list[Intent]:
        """Like [`flush()`][airlock.Scope.flush], awaiting coroutine tasks and awaitable executors.

        A subclass that overrides only `_dispatch_all()` (to defer) is
        honoured: its ``_dispatch_all`` runs, exactly as under ``flush()``.
        """
        intents = self._seal(_FLUSHED, "flush")
        if not intents:
            return []
        now = self._route(intents)
        if now:
            if self._defers_sync_only():
                self._dispatch_all(now)
            else:
                await self._adispatch_all(now)
        return now

    def _defers_sync_only(self) -> bool:
        cls = type(self)
        return cls._dispatch_all is not _base_dispatch_all and cls._adispatch_all is _base_adispatch_all

    def discard(self) -> list[Intent]:
        """Drop every buffered intent (own and captured); return them."""
        dropped = self._seal(_DISCARDED, "discard")
        if dropped and (_observe.observers or _debug_enabled(10)):
            _observe.scope_ended(
                _observe.ScopeEndEvent(self, self.id, "discarded", self._origin, (), tuple(dropped), ())
            )
        return dropped

    def end(self, error: BaseException | None = None, *, flush: bool = True) -> list[Intent]:
        """The one end-of-life path: [`exit()`][airlock.Scope.exit], decide, then [`flush()`][airlock.Scope.flush] or [`discard()`][airlock.Scope.discard].

        The scope flushes when ``flush`` is true (an integration's own rule,
        e.g. "the response status is below 400") and [`should_flush()`][airlock.Scope.should_flush]
        agrees for ``error``. A ``should_flush`` that raises leaves the scope
        discarded and the exception propagating. A subclass whose ``exit()``
        already flushed or discarded is left as it is. Returns what was
        dispatched (``[]`` when discarded).
        """
        self.exit()
        if self._state != _EXITED:
            return []
        # The default decision, without the calls (every scope ends here). The
        # bound method, not ``self.__dict__``, tells whether should_flush is
        # the default one (an override set on the instance counts too):
        # reading ``__dict__`` would build a dict for the instance and slow
        # every later attribute access of the scope.
        if error is None and flush and getattr(self.should_flush, "__func__", None) is _base_should_flush:
            return self.flush()
        if self._decide(error, flush):
            return self.flush()
        self.discard()
        return []

    async def aend(self, error: BaseException | None = None, *, flush: bool = True) -> list[Intent]:
        """Async twin of [`end()`][airlock.Scope.end]: flushes with [`aflush()`][airlock.Scope.aflush]."""
        self.exit()
        if self._state != _EXITED:
            return []
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

    # -- buffer and state -------------------------------------------------

    def _seal(self, state: int, action: str) -> list[Intent]:
        """Move to ``state`` (flushed/discarded) and take the buffer (see the module docstring)."""
        current = self._state
        if current != _EXITED and current != _NEW:
            self._wrong_state(action)
        self._state = state
        buffer = self._buffer
        buffer.append(_SEAL)
        k = len(buffer) - 1
        if not k:
            return []  # it was empty (and _sealed is already 0)
        return self._taken(buffer, k)

    def _taken(self, buffer: list[Intent], k: int) -> list[Intent]:
        """What a seal appended at (or, with late enqueues, before) ``k`` takes."""
        if buffer[k] is not _SEAL:
            k = _find_seal(buffer)
        self._sealed = k
        return buffer[:k]

    def _late(self, intents: list[Intent]) -> None:
        """``intents`` were appended, then the scope was found sealed: were they taken?"""
        with _late_lock:
            buffer = self._buffer
            first = intents[0]
            at = None
            for k in range(len(buffer) - 1, -1, -1):
                item = buffer[k]
                if item is first:
                    at = k
                elif item is _SEAL:
                    if at is None:
                        return  # the seal is after them: the flush took them
                    del buffer[at : at + len(intents)]
                    self._refuse(first)
        # No seal yet: the flush will append it after them, so it takes them.

    def _wrong_state(self, action: str) -> None:
        if self._state == _ACTIVE:
            raise ScopeStateError(
                f"Cannot {action} {self!r} while scope is still active; exit() it first (or use end())"
            )
        raise ScopeStateError(f"cannot {action} {self!r}: it is already {_STATES[self._state]}")

    def _refuse(self, intent: Intent) -> None:
        raise ScopeStateError(
            f"cannot enqueue {intent.name} into {self!r}: it is already {_STATES[self._state]}"
        )

    def _resolve_checks(self) -> tuple[Callable[[Intent], None], ...]:
        """What every enqueue into this scope runs (worked out at the first one)."""
        # Hooks are looked up on the instance (a test may patch one on this very
        # scope), once per scope: here, at its first enqueue.
        custom_add = not _is_default(self, self._add, _base_add)
        found: list[Callable[[Intent], None]] = []
        if self._parent is None:
            # One scope, so one policy and no chain to walk.
            policy = self._policy
            asks = asks_on_enqueue(policy)
            if _is_default(self, self.enqueue_checks, _base_enqueue_checks) and not custom_add:
                # The usual case, kept short: the default checks.
                executor = self._executor
                validate = None if executor is execute else getattr(executor, "validate", None)
                checks: tuple[Callable[[Intent], None], ...] = (validate,) if validate is not None else ()
                if asks:
                    self._asked = (policy,)
                    checks = (_on_enqueue_of(policy), *checks)
                self._checks = checks
                return checks
            asked: tuple[Any, ...] = (policy,) if asks else ()
            _add_distinct(found, self.enqueue_checks())
        else:
            chain: list[Scope] = []
            scope: Scope | None = self
            while scope is not None:
                chain.append(scope)
                scope = scope._parent
            asked = tuple(p for p in distinct([s._policy for s in chain]) if asks_on_enqueue(p))
            for s in chain:
                _add_distinct(found, s.enqueue_checks())
        self._asked = asked
        # Checks marked ``airlock_never_enqueues`` are the library's own and
        # cannot enqueue: without a policy to ask, they run without the guard.
        unguarded = not asked
        for check in found:  # (a loop, not all(): this runs once per scope)
            if not getattr(check, "airlock_never_enqueues", False):
                unguarded = False
                break
        self._unguarded = unguarded
        # Then enqueue runs them and buffers the intent itself, unless this
        # scope changes what happens to an enqueued intent (_add or the judging methods).
        self._inline = (
            unguarded
            and not custom_add
            and _is_default(self, self._judge_and_add, _base_judge_and_add)
            and _is_default(self, self._judge, _base_judge)
        )
        if custom_add:
            # Never empty, so that enqueue always goes through _add.
            found.append(_nothing_to_check)
        # Policies first (innermost first), each looked up when called.
        resolved = (*[_on_enqueue_of(p) for p in asked], *found) if asked else tuple(found)
        self._checks = resolved
        return resolved

    def _judge_and_add(self, intent: Intent, checks: tuple[Callable[[Intent], None], ...]) -> None:
        """Judge ``intent`` at enqueue, then hand it to `_add()`."""
        self._judge(intent, checks)
        self._add(intent)

    def _judge(self, intent: Intent, checks: tuple[Callable[[Intent], None], ...]) -> None:
        """Run the enqueue-time judgement of ``intent`` (under the judging guard)."""
        meta = intent._meta
        if self._unguarded and (meta is None or not meta.local_policies):
            for check in checks:
                check(intent)
            meta = intent._meta  # a check may have added a condition
            if meta is not None and meta.conditions:
                self._needs_filter = True
            return
        token = _set_current(self._judging_guard())
        try:
            local = intent.local_policies
            if local:
                # Local policies first (innermost first), then the scope
                # policies that were not among them: each instance once.
                ordered = distinct(list(reversed(local)))
                for policy in ordered:
                    policy.on_enqueue(intent)
                asked = self._asked
                for policy in asked:
                    if not any(policy is seen for seen in ordered):
                        policy.on_enqueue(intent)
                checks = checks[len(asked) :]
                self._needs_filter = self._has_local = True
            for check in checks:
                check(intent)
        finally:
            _reset_current(token)
        meta = intent._meta
        if meta is not None and meta.conditions:
            self._needs_filter = True

    def _judging_guard(self) -> _context._Judging:
        guard = self._guard
        if guard is None:
            guard = self._guard = _context._Judging(self)
        return guard

    # -- nesting and judgement at flush -----------------------------------

    def _route(self, intents: list[Intent]) -> list[Intent]:
        """The intents this flush dispatches now (judged); the rest go to ancestors."""
        try:
            if self._parent is None and not self._needs_filter and not self._captured:
                # One scope, plain intents: judged by its policy alone.
                policy = self._policy
                if (
                    getattr(type(policy), "allows", None) is _ALLOWS_EVERYTHING
                    and not getattr(policy, "__dict__", True)
                    and getattr(policy, "select", None) is None
                ):
                    now = intents  # it allows everything
                else:
                    now = self._judged(intents)
                if _observe.observers or _debug_enabled(10):
                    self._ended(intents, now, [])
                return now
            kept = [i for i in intents if not i._is_void()] if self._needs_filter else intents
            if self._parent is None or self.dispatches_own_intents:
                now = self._judged(kept)
                captured: list[Intent] = []
            else:
                now, captured = self._hand_to_ancestors(kept)
                if now:
                    now = self._judged(now)
        except BaseException as exc:
            report_undispatched(self, exc, intents, f"was raised while {self!r} was flushing")
            raise
        if _observe.observers or _debug_enabled(10):
            self._ended(intents, now, captured)
        return now

    def _ended(self, intents: list[Intent], now: list[Intent], captured: list[Intent]) -> None:
        out_ids = {id(i) for i in now} | {id(i) for i in captured}
        dropped = tuple(i for i in intents if id(i) not in out_ids)
        _observe.scope_ended(
            _observe.ScopeEndEvent(
                self, self.id, "flushed", self._origin, tuple(now), dropped, tuple(captured)
            )
        )

    def _tail(self) -> tuple[Any, ...]:
        """The policies that judge at this own-dispatching scope's final dispatch, innermost first."""
        policies = []
        scope: Scope | None = self
        while scope is not None:
            policies.append(scope._policy)
            scope = scope._parent
        return distinct(policies)

    def _judged(self, intents: list[Intent]) -> list[Intent]:
        """Final judgement of ``intents``, dispatched by this scope."""
        tail = (self._policy,) if self._parent is None or not self.dispatches_own_intents else self._tail()
        captured = self._captured
        if not captured and not self._has_local:
            # Every intent has the same judges: this scope's policy (and, for
            # a scope that dispatches its own, the enclosing ones).
            selectors = [select for select in map(selector, tail) if select is not None]
            if not selectors:
                return intents  # they all allow everything
            token = _set_current(self._judging_guard())
            try:
                for select in selectors:
                    intents = select(intents)
                    if not intents:
                        break
                return intents
            finally:
                _reset_current(token)
        chains = []
        for intent in intents:
            history = captured.get(id(intent), ()) if captured else ()
            chains.append(distinct([*reversed(intent.local_policies), *history, *tail]))
        token = _set_current(self._judging_guard())
        try:
            return judge(intents, chains)
        finally:
            _reset_current(token)

    def _hand_to_ancestors(self, intents: list[Intent]) -> tuple[list[Intent], list[Intent]]:
        """Ask each ancestor which intents may dispatch now; it captures the others."""
        captured: list[Intent] = []
        ancestor = self._parent
        while intents and ancestor is not None:
            allowed = ancestor.before_descendant_flushes(self, intents)
            if not isinstance(allowed, list):
                raise TypeError(
                    f"{type(ancestor).__name__}.before_descendant_flushes() must return a list of intents, "
                    f"got {type(allowed).__name__}"
                )
            if allowed:
                allowed = checked_subsequence(allowed, intents, "before_descendant_flushes")
                allowed_ids = {id(i) for i in allowed}
                taken = [i for i in intents if id(i) not in allowed_ids]
            else:
                taken = intents
            ancestor._capture(taken, self)
            captured += taken
            intents = allowed
            ancestor = ancestor._parent
        return intents, captured

    def _capture(self, intents: list[Intent], descendant: Scope) -> None:
        """Take ``intents`` from a flushing ``descendant`` into this buffer."""
        if not intents:
            return
        mine = self._captured
        if mine is None:
            mine = self._captured = {}
        theirs = descendant._captured
        own = (descendant._policy,)
        merged: dict[int, tuple[Any, ...]] = {}  # one history tuple per distinct history
        if self._state > _EXITED:
            self._cannot_capture(intents, descendant)
        for intent in intents:
            history = theirs.get(id(intent)) if theirs else None
            if history is None:
                mine[id(intent)] = own
            else:
                new = merged.get(id(history))
                if new is None:
                    new = merged[id(history)] = distinct([*history, descendant._policy])
                mine[id(intent)] = new
        if descendant._needs_filter:
            self._needs_filter = True
        if descendant._has_local:
            self._has_local = True
        self._buffer.extend(intents)  # one atomic append of the batch
        if self._state > _EXITED:  # sealed by another thread meanwhile
            try:
                self._late(intents)
            except ScopeStateError:
                self._cannot_capture(intents, descendant)

    def _cannot_capture(self, intents: list[Intent], descendant: Scope) -> None:
        raise ScopeStateError(
            f"{descendant!r} flushed {len(intents)} intent(s) into its enclosing {self!r}, "
            f"which is already {_STATES[self._state]}: they cannot be captured"
        )


_base_add = Scope._add
_base_judge_and_add = Scope._judge_and_add
_base_judge = Scope._judge
_base_dispatch_all = Scope._dispatch_all
_base_adispatch_all = Scope._adispatch_all
_base_should_flush = Scope.should_flush
_base_enqueue_checks = Scope.enqueue_checks
_base_before_descendant_flushes = Scope.before_descendant_flushes


def _find_seal(buffer: list[Intent]) -> int:
    # Late enqueues may append after the marker (and take theirs out again),
    # never before it.
    k = len(buffer) - 1
    while True:
        try:
            if buffer[k] is _SEAL:
                return k
        except IndexError:  # a late enqueue took its intent out meanwhile
            k = len(buffer)
        k -= 1


def _is_default(scope: Scope, bound: Any, base: Callable[..., Any]) -> bool:
    """Whether ``bound`` (a hook read on ``scope``) is ``base`` bound to ``scope``: neither
    overridden by its class nor set on the instance."""
    try:
        return bound.__func__ is base and bound.__self__ is scope
    except AttributeError:  # not a bound method: something set on the instance
        return False


def _add_distinct(found: list[Callable[[Intent], None]], checks: Iterable[Callable[[Intent], None]]) -> None:
    """Append each of ``checks`` to ``found`` unless an equal one is there already."""
    for check in checks:
        for seen in found:
            if check == seen:
                break
        else:
            found.append(check)


def _nothing_to_check(intent: Intent) -> None:
    pass


def _on_enqueue_of(policy: Any) -> Callable[[Intent], None]:
    # Looked up when called: an instance attribute or a patch takes effect.
    return lambda intent: policy.on_enqueue(intent)


def _is_ancestor(scope: Scope, of: Any) -> bool:
    parent = getattr(of, "_parent", None)
    while parent is not None:
        if parent is scope:
            return True
        parent = parent._parent
    return False
