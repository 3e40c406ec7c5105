"""Property-based test: random programs run against airlock and a reference model.

A program is a tree of nested scopes (random policies, some with a custom
``before_descendant_flushes`` that lets a set of names through), local
``airlock.policy()`` blocks, enqueues of named tasks, exceptions raised at
random depths and caught at random levels, a task that fails at dispatch, and
"transactional" scopes (a documented extension point: ``enqueue_checks`` +
``intent.add_condition``) whose savepoint may roll back, voiding the intents
enqueued in them wherever those intents have been captured to.
The reference model below follows SPEC §2.4/§2.5/§2.7 literally, in plain
Python; the exact sequence of dispatched intents (and what the outermost scope
holds, own vs captured, and which exception escapes) must be the same.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Union

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import airlock
from core_helpers import AllowNames, passthrough_scope

# -- programs -----------------------------------------------------------------

NAMES = ("a", "b", "c", "d")
FAILING = "f"  # a task that raises when dispatched


@dataclass(frozen=True)
class Enqueue:
    name: str


@dataclass(frozen=True)
class Raise:
    pass


@dataclass(frozen=True)
class Rollback:
    """The innermost transactional scope's savepoint rolls back: its intents are void."""


@dataclass(frozen=True)
class Scope:
    policy: tuple[Any, ...]
    passthrough: frozenset[str] | None  # None: the default (capture everything)
    body: tuple[Op, ...]
    catch: bool  # swallow an exception that escapes this scope
    tx: bool = False  # ties its intents (and nested ones) to a savepoint


@dataclass(frozen=True)
class Local:
    policy: tuple[Any, ...]
    body: tuple[Op, ...]


@dataclass(frozen=True)
class Try:
    body: tuple[Op, ...]


Op = Union[Enqueue, Raise, Rollback, Scope, Local, Try]

name_sets = st.frozensets(st.sampled_from(NAMES), max_size=3)
allow_all = st.just(("allow",))
# Weighted towards permissive policies and caught exceptions, so that most
# programs dispatch something and the interesting cases stay frequent.
drop_all = st.just(("drop",))
block_tasks = st.tuples(st.just("block"), name_sets, st.booleans())
only_names = st.tuples(st.just("only"), name_sets)
local_policies = st.one_of(allow_all, allow_all, drop_all, block_tasks, only_names)
scope_policies = st.one_of(
    allow_all, allow_all, allow_all, allow_all, drop_all, block_tasks, only_names, st.just(("coalesce",))
)
# 1 in 15 leaves raises, 1 in 15 rolls back, 1 in 15 enqueues the task that fails at dispatch.
leaves = st.sampled_from((*(Enqueue(n) for n in NAMES * 3), Enqueue(FAILING), Raise(), Rollback()))
catches = st.sampled_from((True, True, True, False))


def _bodies(children: st.SearchStrategy[Op]) -> st.SearchStrategy[tuple[Op, ...]]:
    return st.lists(children, min_size=1, max_size=5).map(tuple)


ops: st.SearchStrategy[Op] = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.builds(Scope, scope_policies, st.none() | name_sets, _bodies(children), catches, st.booleans()),
        st.builds(Scope, scope_policies, st.none() | name_sets, _bodies(children), catches, st.booleans()),
        st.builds(Local, local_policies, _bodies(children)),
        st.builds(Try, _bodies(children)),
    ),
    max_leaves=30,
)
programs = st.builds(
    Scope, scope_policies, st.just(None), st.lists(ops, min_size=1, max_size=8).map(tuple), st.just(True), st.booleans()
)


class Boom(Exception):
    pass


@dataclass
class Outcome:
    dispatched: list[tuple[str, int]]
    root_own: list[tuple[str, int]]
    root_captured: list[tuple[str, int]]
    escaped: str | None


# -- the reference model -------------------------------------------------------


@dataclass(eq=False)
class Savepoint:
    alive: bool = True


@dataclass(eq=False)
class MIntent:
    name: str
    serial: int
    local_policies: tuple[tuple[Any, ...], ...]
    savepoints: tuple[Savepoint, ...]  # of every transactional scope around the enqueue


@dataclass(eq=False)
class MScope:
    policy: tuple[Any, ...]
    passthrough: frozenset[str] | None
    savepoint: Savepoint | None = None
    buffer: list[MIntent] = field(default_factory=list)
    captured: list[MIntent] = field(default_factory=list)


class ModelViolation(Exception):
    pass


class ModelDispatchError(Exception):
    pass


def m_allows(policy: tuple[Any, ...], intent: MIntent) -> bool:
    kind = policy[0]
    if kind == "drop":
        return False
    if kind == "block":
        return intent.name not in policy[1]
    if kind == "only":
        return intent.name in policy[1]
    return True  # allow, coalesce


def m_refuses_at_enqueue(policy: tuple[Any, ...], intent: MIntent) -> bool:
    return policy[0] == "block" and policy[2] and intent.name in policy[1]


def m_select(policy: tuple[Any, ...], intents: list[MIntent]) -> list[MIntent]:
    if policy[0] == "coalesce":  # keep the first intent of each name
        seen: set[str] = set()
        kept = []
        for i in intents:
            if i.name not in seen:
                seen.add(i.name)
                kept.append(i)
        return kept
    return [i for i in intents if m_allows(policy, i)]


class Model:
    """SPEC §2.4/§2.5/§2.7, literally."""

    def __init__(self) -> None:
        self.scopes: list[MScope] = []  # active scopes, outermost first
        self.locals: list[tuple[Any, ...]] = []
        self.dispatched: list[tuple[str, int]] = []
        self.serials = itertools.count()

    def enqueue(self, name: str) -> None:
        savepoints = tuple(s.savepoint for s in self.scopes if s.savepoint is not None)
        intent = MIntent(name, next(self.serials), tuple(self.locals), savepoints)
        # At enqueue: every local policy, then every enclosing scope, innermost first.
        for policy in [*reversed(self.locals), *(s.policy for s in reversed(self.scopes))]:
            if m_refuses_at_enqueue(policy, intent):
                raise ModelViolation
        self.scopes[-1].buffer.append(intent)

    def run_scope(self, op: Scope) -> MScope:
        scope = MScope(op.policy, op.passthrough, Savepoint() if op.tx else None)
        self.scopes.append(scope)
        try:
            self.run(op.body)
        except BaseException:
            self.scopes.pop()  # discard: its intents are dropped, not captured
            raise
        self.scopes.pop()
        self.flush(scope)
        return scope

    def flush(self, scope: MScope) -> None:
        # Void intents (their savepoint rolled back) never dispatch; its local
        # policies and this scope's policy judge every other buffered intent.
        allowed = [
            i
            for i in scope.buffer
            if all(sp.alive for sp in i.savepoints) and all(m_allows(p, i) for p in i.local_policies)
        ]
        allowed = m_select(scope.policy, allowed)
        # Each enclosing scope, parent outwards, captures what it does not let through.
        for ancestor in reversed(self.scopes):
            now = [] if ancestor.passthrough is None else [i for i in allowed if i.name in ancestor.passthrough]
            later = [i for i in allowed if i not in now]
            ancestor.buffer += later
            ancestor.captured += later
            allowed = now
        # Dispatch in FIFO order; attempt everything, then report failures.
        for intent in allowed:
            self.dispatched.append((intent.name, intent.serial))
        if any(i.name == FAILING for i in allowed):
            raise ModelDispatchError

    def run(self, body: tuple[Op, ...]) -> None:
        for op in body:
            if isinstance(op, Enqueue):
                self.enqueue(op.name)
            elif isinstance(op, Raise):
                raise Boom
            elif isinstance(op, Rollback):
                tx = [s for s in self.scopes if s.savepoint is not None]
                if tx:
                    tx[-1].savepoint.alive = False  # type: ignore[union-attr]
            elif isinstance(op, Local):
                self.locals.append(op.policy)
                try:
                    self.run(op.body)
                finally:
                    self.locals.pop()
            elif isinstance(op, Try):
                try:
                    self.run(op.body)
                except (Boom, ModelViolation, ModelDispatchError):
                    pass
            else:
                try:
                    self.run_scope(op)
                except (Boom, ModelViolation, ModelDispatchError):
                    if not op.catch:
                        raise


def run_model(program: Scope) -> Outcome:
    model = Model()
    escaped = None
    root = MScope(program.policy, program.passthrough, Savepoint() if program.tx else None)
    try:
        model.scopes.append(root)
        try:
            model.run(program.body)
        finally:
            model.scopes.pop()
        model.flush(root)
    except Boom:
        escaped = "boom"
    except ModelViolation:
        escaped = "violation"
    except ModelDispatchError:
        escaped = "dispatch"
    pair = lambda i: (i.name, i.serial)  # noqa: E731
    return Outcome(
        model.dispatched,
        [pair(i) for i in root.buffer if i not in root.captured],
        [pair(i) for i in root.captured],
        escaped,
    )


# -- the same program through airlock -------------------------------------------


def make_policy(spec: tuple[Any, ...]) -> airlock.Policy:
    kind = spec[0]
    if kind == "allow":
        return airlock.AllowAll()
    if kind == "drop":
        return airlock.DropAll()
    if kind == "block":
        return airlock.BlockTasks(spec[1], raise_on_enqueue=spec[2])
    if kind == "only":
        return AllowNames(*spec[1])
    assert kind == "coalesce"
    return airlock.CoalesceDuplicates(lambda intent: intent.name)


CATCHABLE = (Boom, airlock.PolicyViolation, airlock.DispatchError)


class TxScope(airlock.Scope):
    """Ties every intent enqueued in it (or in a nested scope) to its savepoint."""

    def __init__(self, policy: Any = None, *, savepoint: Savepoint, **kwargs: Any) -> None:
        self.savepoint = savepoint
        super().__init__(policy, **kwargs)

    def enqueue_checks(self) -> Iterator[Any]:
        yield from super().enqueue_checks()
        savepoint = self.savepoint
        yield lambda intent: intent.add_condition(lambda: savepoint.alive)


class Runner:
    def __init__(self) -> None:
        self.dispatched: list[tuple[str, int]] = []
        self.serials = itertools.count()
        self.savepoints: list[Savepoint] = []  # of the active transactional scopes
        self.tasks = {name: self._task(name) for name in (*NAMES, FAILING)}

    def _task(self, name: str) -> Any:
        def task(serial: int) -> None:
            self.dispatched.append((name, serial))
            if name == FAILING:
                raise RuntimeError("dispatch failed")

        task.__name__ = name
        return task

    def scope_for(self, op: Scope) -> airlock.Scope:
        cls = airlock.Scope if op.passthrough is None else passthrough_scope(*op.passthrough)
        if not op.tx:
            return airlock.scope(make_policy(op.policy), _cls=cls)
        tx_cls = type("Tx", (TxScope, cls), {})
        savepoint = Savepoint()
        self.savepoints.append(savepoint)
        return airlock.scope(make_policy(op.policy), _cls=tx_cls, savepoint=savepoint)

    @contextmanager
    def tx(self) -> Iterator[None]:
        depth = len(self.savepoints)
        try:
            yield
        finally:
            del self.savepoints[depth:]  # leave the transaction with its scope

    def rollback(self) -> None:
        if self.savepoints:
            self.savepoints[-1].alive = False

    def enqueue(self, name: str) -> None:
        airlock.enqueue(self.tasks[name], next(self.serials))

    def run(self, body: tuple[Op, ...]) -> None:
        for op in body:
            if isinstance(op, Enqueue):
                self.enqueue(op.name)
            elif isinstance(op, Raise):
                raise Boom
            elif isinstance(op, Rollback):
                self.rollback()
            elif isinstance(op, Local):
                with airlock.policy(make_policy(op.policy)):
                    self.run(op.body)
            elif isinstance(op, Try):
                try:
                    self.run(op.body)
                except CATCHABLE:
                    pass
            else:
                try:
                    with self.tx(), self.scope_for(op):
                        self.run(op.body)
                except CATCHABLE:
                    if not op.catch:
                        raise

    async def arun(self, body: tuple[Op, ...]) -> None:
        for op in body:
            if isinstance(op, Enqueue):
                self.enqueue(op.name)
                await asyncio.sleep(0)
            elif isinstance(op, Raise):
                raise Boom
            elif isinstance(op, Rollback):
                self.rollback()
            elif isinstance(op, Local):
                async with airlock.policy(make_policy(op.policy)):
                    await self.arun(op.body)
            elif isinstance(op, Try):
                try:
                    await self.arun(op.body)
                except CATCHABLE:
                    pass
            else:
                try:
                    with self.tx():
                        async with self.scope_for(op):
                            await self.arun(op.body)
                except CATCHABLE:
                    if not op.catch:
                        raise


@contextmanager
def _outcome(runner: Runner, root_box: list[airlock.Scope], result: list[Outcome]) -> Iterator[None]:
    escaped = None
    try:
        yield
    except Boom:
        escaped = "boom"
    except airlock.PolicyViolation:
        escaped = "violation"
    except airlock.DispatchError:
        escaped = "dispatch"
    [root] = root_box
    pair = lambda i: (i.name, i.args[0])  # noqa: E731
    own = [pair(i) for i in root.own_intents]
    captured = [pair(i) for i in root.captured_intents]
    result.append(Outcome(runner.dispatched, own, captured, escaped))
    assert airlock.get_current_scope() is None


def run_airlock(program: Scope) -> Outcome:
    runner, root_box, result = Runner(), [], []  # type: ignore[var-annotated]
    with _outcome(runner, root_box, result):
        root = runner.scope_for(program)
        root_box.append(root)
        with root:
            runner.run(program.body)
    return result[0]


def run_airlock_async(program: Scope) -> Outcome:
    runner, root_box, result = Runner(), [], []  # type: ignore[var-annotated]

    async def main() -> None:
        with _outcome(runner, root_box, result):
            root = runner.scope_for(program)
            root_box.append(root)
            async with root:
                await runner.arun(program.body)

    asyncio.run(main())
    return result[0]


SETTINGS = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(programs)
def test_airlock_matches_the_reference_model(program: Scope) -> None:
    assert run_airlock(program) == run_model(program)


@settings(SETTINGS, max_examples=100)
@given(programs)
def test_async_scopes_match_the_reference_model(program: Scope) -> None:
    assert run_airlock_async(program) == run_model(program)


# -- the model itself must be able to tell programs apart ------------------------

A, B = Enqueue("a"), Enqueue("b")


def _root(*body: Op, policy: tuple[Any, ...] = ("allow",)) -> Scope:
    return Scope(policy, None, body, True)


def test_model_examples_from_the_spec() -> None:
    # inner DropAll under a permissive outer: nothing
    assert run_model(_root(Scope(("drop",), None, (A,), False))).dispatched == []
    # the outer scope has the last word
    assert run_model(_root(Scope(("allow",), None, (A,), False), policy=("drop",))).dispatched == []
    # an inner scope that discards drops its intents; the outer keeps its own
    out = run_model(_root(A, Scope(("allow",), None, (B, Raise()), True), B))
    assert out.dispatched == [("a", 0), ("b", 2)]
    # captured intents take their place when captured
    out = run_model(_root(A, Scope(("allow",), None, (B,), False), A))
    assert out.dispatched == [("a", 0), ("b", 1), ("a", 2)] and out.root_captured == [("b", 1)]
    # a passthrough parent lets the inner scope dispatch now, before the parent's own
    out = run_model(Scope(("allow",), frozenset({"b"}), (A, Scope(("allow",), None, (B,), False)), True))
    assert out.dispatched == [("b", 1), ("a", 0)]
    # raise_on_enqueue on an outer scope refuses a nested enqueue
    out = run_model(_root(Scope(("allow",), None, (A,), False), policy=("block", frozenset({"a"}), True)))
    assert out.escaped == "violation" and out.dispatched == []
    # a rolled-back savepoint voids its intents, also those captured from nested scopes
    tx = Scope(("allow",), None, (A, Scope(("allow",), None, (B,), False), Rollback()), False, tx=True)
    assert run_model(_root(tx, A)).dispatched == [("a", 2)]
    # ...and after they were captured by an outer scope
    inner_tx = Scope(("allow",), None, (A, Scope(("allow",), None, (B,), False, tx=True), Rollback()), False, tx=True)
    assert run_model(_root(inner_tx)).dispatched == []
    rolls_back = Scope(("allow",), None, (B, Rollback()), False, tx=True)
    inner_rollback = Scope(("allow",), None, (A, rolls_back), False, tx=True)
    assert run_model(_root(inner_rollback)).dispatched == [("a", 0)]
    # once its scope has ended, a savepoint cannot roll back any more
    assert len(run_model(_root(Scope(("allow",), None, (A,), False, tx=True), Rollback())).dispatched) == 1
    # a failing task does not cancel the rest
    out = run_model(_root(Enqueue(FAILING), A))
    assert out.dispatched == [("f", 0), ("a", 1)] and out.escaped == "dispatch"
    for program in [
        _root(Scope(("drop",), None, (A,), False)),
        _root(A, Scope(("allow",), None, (B, Raise()), True), B),
        Scope(("allow",), frozenset({"b"}), (A, Scope(("allow",), None, (B,), False)), True),
        _root(Enqueue(FAILING), A),
        _root(Local(("drop",), (A,)), A, policy=("coalesce",)),
        _root(Scope(("allow",), None, (A, Scope(("allow",), None, (B,), False), Rollback()), False, tx=True), A),
    ]:
        assert run_airlock(program) == run_model(program)
        assert run_airlock_async(program) == run_model(program)
