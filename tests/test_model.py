"""Property-based test: random programs run against airlock and a reference model.

A program is a tree of nested scopes (random policies, some with a custom
``before_descendant_flushes`` that lets a set of names through), local
``airlock.policy()`` blocks, enqueues of named tasks, exceptions raised at
random depths and caught at random levels, a task that fails at dispatch, and
"transactional" scopes (a documented extension point: ``enqueue_checks`` +
``intent.add_condition``) whose savepoint may roll back, voiding the intents
enqueued in them wherever those intents have been captured to.
Programs also hand the current scope to a worker thread (``carry_context``),
share policy instances between scopes and local blocks, and enqueue a task
that raises ``KeyboardInterrupt`` when dispatched.
The reference model below follows SPEC §2.4/§2.5/§2.7 and §5.2 literally, in
plain Python; the exact sequence of dispatched intents, every ``allows`` /
``select`` call each policy instance received (so: once per distinct instance,
local policies innermost first, stopping at the first ``False``, never at an
inner flush that only hands intents on), what the outermost scope holds (own
vs captured), which exception escapes and which intents an interrupt left
undispatched must be the same.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import airlock
from core_helpers import AllowNames, passthrough_scope

# -- programs -----------------------------------------------------------------

NAMES = ("a", "b", "c", "d")
FAILING = "f"  # a task that raises when dispatched
INTERRUPTING = "k"  # a task that raises KeyboardInterrupt when dispatched
#: Policy instances a program may share between several scopes and local blocks.
SHARED = (("block", frozenset({"a"}), False), ("coalesce",))


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


@dataclass(frozen=True)
class Thread:
    """Run the body in a worker thread handed the current context (carry_context)."""

    body: tuple[Op, ...]


Op = Enqueue | Raise | Rollback | Scope | Local | Try | Thread

name_sets = st.frozensets(st.sampled_from(NAMES), max_size=3)
allow_all = st.just(("allow",))
# Weighted towards permissive policies and caught exceptions, so that most
# programs dispatch something and the interesting cases stay frequent.
drop_all = st.just(("drop",))
block_tasks = st.tuples(st.just("block"), name_sets, st.booleans())
only_names = st.tuples(st.just("only"), name_sets)
shared = st.tuples(st.just("shared"), st.sampled_from(range(len(SHARED))))
local_policies = st.one_of(allow_all, allow_all, drop_all, block_tasks, only_names, shared)
scope_policies = st.one_of(
    allow_all,
    allow_all,
    allow_all,
    allow_all,
    drop_all,
    block_tasks,
    only_names,
    st.just(("coalesce",)),
    shared,
)
# 1 in 16 leaves raises, 1 in 16 rolls back, 1 in 16 enqueues the task that fails
# at dispatch, 1 in 16 the one that interrupts.
leaves = st.sampled_from(
    (*(Enqueue(n) for n in NAMES * 3), Enqueue(FAILING), Enqueue(INTERRUPTING), Raise(), Rollback())
)
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
        st.builds(Thread, _bodies(children)),
    ),
    max_leaves=30,
)
programs = st.builds(
    Scope,
    scope_policies,
    st.just(None),
    st.lists(ops, min_size=1, max_size=8).map(tuple),
    st.just(True),
    st.booleans(),
)


class Boom(Exception):
    pass


@dataclass
class Outcome:
    dispatched: list[tuple[str, int]]
    root_own: list[tuple[str, int]]
    root_captured: list[tuple[str, int]]
    escaped: str | None
    #: (policy label, serial) per allows() call, (label, serials) per select() call.
    judged: list[tuple[str, Any]]
    #: what the interrupt left undispatched, as named in the "airlock" error record
    undispatched: list[tuple[str, int]]


# -- the reference model -------------------------------------------------------


@dataclass(eq=False)
class Savepoint:
    alive: bool = True


@dataclass(eq=False)
class MPolicy:
    spec: tuple[Any, ...]
    label: str


@dataclass(eq=False)
class MIntent:
    name: str
    serial: int
    local_policies: tuple[MPolicy, ...]  # outermost first
    savepoints: tuple[Savepoint, ...]  # of every transactional scope around the enqueue
    history: tuple[MPolicy, ...] = ()  # policies of the scopes it was captured from


@dataclass(eq=False)
class MScope:
    policy: MPolicy
    passthrough: frozenset[str] | None
    savepoint: Savepoint | None = None
    buffer: list[MIntent] = field(default_factory=list)
    captured: list[MIntent] = field(default_factory=list)


class ModelViolation(Exception):
    pass


class ModelDispatchError(Exception):
    pass


class ModelInterrupt(BaseException):
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


def distinct(policies: list[MPolicy]) -> tuple[MPolicy, ...]:
    kept: list[MPolicy] = []
    for p in policies:
        if all(p is not q for q in kept):
            kept.append(p)
    return tuple(kept)


class Model:
    """SPEC §2.4/§2.5/§2.7 and §5.2, literally."""

    def __init__(self) -> None:
        self.scopes: list[MScope] = []  # active scopes, outermost first
        self.locals: list[MPolicy] = []
        self.dispatched: list[tuple[str, int]] = []
        self.judged: list[tuple[str, Any]] = []
        self.undispatched: list[tuple[str, int]] = []
        self.serials = itertools.count()
        self.labels = itertools.count()
        self.shared = [MPolicy(spec, self.label()) for spec in SHARED]

    def label(self) -> str:
        return f"p{next(self.labels)}"

    def policy(self, spec: tuple[Any, ...]) -> MPolicy:
        if spec[0] == "shared":
            return self.shared[spec[1]]
        return MPolicy(spec, self.label())

    def enqueue(self, name: str) -> None:
        savepoints = tuple(s.savepoint for s in self.scopes if s.savepoint is not None)
        intent = MIntent(name, next(self.serials), tuple(self.locals), savepoints)
        # At enqueue: every local policy, then every enclosing scope, innermost first.
        for policy in distinct([*reversed(self.locals), *(s.policy for s in reversed(self.scopes))]):
            if m_refuses_at_enqueue(policy.spec, intent):
                raise ModelViolation
        self.scopes[-1].buffer.append(intent)

    def run_scope(self, op: Scope) -> MScope:
        scope = MScope(self.policy(op.policy), op.passthrough, Savepoint() if op.tx else None)
        self.scopes.append(scope)
        try:
            self.run(op.body)
        except BaseException:
            self.scopes.pop()  # discard: its intents are dropped, not captured
            raise
        self.scopes.pop()
        self.flush(scope)
        return scope

    def judge(self, intents: list[MIntent], chains: list[tuple[MPolicy, ...]]) -> list[MIntent]:
        # In rounds: in round r each policy sees, together and in FIFO order,
        # the still-allowed intents whose r-th judge it is; a refused intent is
        # asked no further.
        alive = list(range(len(intents)))
        r = 0
        while alive:
            groups: dict[int, tuple[MPolicy, list[int]]] = {}
            for k in alive:
                if r < len(chains[k]):
                    p = chains[k][r]
                    groups.setdefault(id(p), (p, []))[1].append(k)
            if not groups:
                break
            refused: set[int] = set()
            for policy, members in groups.values():
                kind = policy.spec[0]
                if kind == "allow":
                    continue  # AllowAll: nothing to ask
                if kind == "coalesce":  # one select() over the group: first of each name
                    self.judged.append((policy.label, tuple(intents[k].serial for k in members)))
                    seen: set[str] = set()
                    for k in members:
                        if intents[k].name in seen:
                            refused.add(k)
                        seen.add(intents[k].name)
                    continue
                for k in members:
                    self.judged.append((policy.label, intents[k].serial))
                    if not m_allows(policy.spec, intents[k]):
                        refused.add(k)
            alive = [k for k in alive if k not in refused]
            r += 1
        return [intents[k] for k in alive]

    def flush(self, scope: MScope) -> None:
        # Void intents (their savepoint rolled back) never dispatch.
        kept = [i for i in scope.buffer if all(sp.alive for sp in i.savepoints)]
        # Each enclosing scope, parent outwards, captures what it does not let
        # through, unjudged: policies judge once, at the final dispatch.
        for ancestor in reversed(self.scopes):
            if not kept:
                break
            now = [] if ancestor.passthrough is None else [i for i in kept if i.name in ancestor.passthrough]
            for i in kept:
                if i not in now:
                    i.history = distinct([*i.history, scope.policy])
                    ancestor.buffer.append(i)
                    ancestor.captured.append(i)
            kept = now
        # Judged by its local policies (innermost first), every scope it
        # passed through, and this one: each distinct instance once.
        chains = [distinct([*reversed(i.local_policies), *i.history, scope.policy]) for i in kept]
        allowed = self.judge(kept, chains)
        # Dispatch in FIFO order; attempt everything, then report failures.
        for n, intent in enumerate(allowed):
            self.dispatched.append((intent.name, intent.serial))
            if intent.name == INTERRUPTING:
                self.undispatched = [(i.name, i.serial) for i in allowed[n:]]
                raise ModelInterrupt
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
                self.locals.append(self.policy(op.policy))
                try:
                    self.run(op.body)
                finally:
                    self.locals.pop()
            elif isinstance(op, Try):
                try:
                    self.run(op.body)
                except (Boom, ModelViolation, ModelDispatchError):
                    pass
            elif isinstance(op, Thread):
                self.run(op.body)  # the thread shares the caller's scope and local policies
            else:
                try:
                    self.run_scope(op)
                except (Boom, ModelViolation, ModelDispatchError):
                    if not op.catch:
                        raise


def run_model(program: Scope) -> Outcome:
    model = Model()
    escaped = None
    root = MScope(model.policy(program.policy), program.passthrough, Savepoint() if program.tx else None)
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
    except ModelInterrupt:
        escaped = "interrupt"
    pair = lambda i: (i.name, i.serial)  # noqa: E731
    return Outcome(
        model.dispatched,
        [pair(i) for i in root.buffer if i not in root.captured],
        [pair(i) for i in root.captured],
        escaped,
        model.judged,
        model.undispatched,
    )


# -- the same program through airlock -------------------------------------------


class Recording:
    """Mixed into every policy but AllowAll: logs each allows()/select() call."""

    label: str
    log: list[tuple[str, Any]]

    def allows(self, intent: airlock.Intent) -> bool:
        self.log.append((self.label, intent.args[0]))
        return super().allows(intent)  # type: ignore[misc, no-any-return]


class RDrop(Recording, airlock.DropAll):
    pass


class RBlock(Recording, airlock.BlockTasks):
    pass


class ROnly(Recording, AllowNames):
    pass


class RCoalesce(Recording, airlock.CoalesceDuplicates):
    # CoalesceDuplicates judges a whole batch with select(); allows() is never asked.
    def select(self, intents: list[airlock.Intent]) -> list[airlock.Intent]:
        self.log.append((self.label, tuple(i.args[0] for i in intents)))
        return super().select(intents)


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
        self.judged: list[tuple[str, Any]] = []
        self.serials = itertools.count()
        self.labels = itertools.count()
        self.savepoints: list[Savepoint] = []  # of the active transactional scopes
        self.tasks = {name: self._task(name) for name in (*NAMES, FAILING, INTERRUPTING)}
        self.shared = [self.make_policy(spec) for spec in SHARED]

    def _task(self, name: str) -> Any:
        def task(serial: int) -> None:
            self.dispatched.append((name, serial))
            if name == FAILING:
                raise RuntimeError("dispatch failed")
            if name == INTERRUPTING:
                raise KeyboardInterrupt

        task.__name__ = name
        return task

    def make_policy(self, spec: tuple[Any, ...]) -> Any:
        kind = spec[0]
        if kind == "shared":
            return self.shared[spec[1]]
        label = f"p{next(self.labels)}"
        if kind == "allow":
            return airlock.AllowAll()
        policy: Any
        if kind == "drop":
            policy = RDrop()
        elif kind == "block":
            policy = RBlock(spec[1], raise_on_enqueue=spec[2])
        elif kind == "only":
            policy = ROnly(*spec[1])
        else:
            assert kind == "coalesce"
            policy = RCoalesce(lambda intent: intent.name)
        policy.label, policy.log = label, self.judged
        return policy

    def scope_for(self, op: Scope) -> airlock.Scope:
        cls = airlock.Scope if op.passthrough is None else passthrough_scope(*op.passthrough)
        if not op.tx:
            return airlock.scope(self.make_policy(op.policy), _cls=cls)
        tx_cls = type("Tx", (TxScope, cls), {})
        savepoint = Savepoint()
        self.savepoints.append(savepoint)
        return airlock.scope(self.make_policy(op.policy), _cls=tx_cls, savepoint=savepoint)

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
                with airlock.policy(self.make_policy(op.policy)):
                    self.run(op.body)
            elif isinstance(op, Try):
                try:
                    self.run(op.body)
                except CATCHABLE:
                    pass
            elif isinstance(op, Thread):
                with ThreadPoolExecutor(1) as pool:
                    pool.submit(airlock.carry_context(self.run), op.body).result()
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
                async with airlock.policy(self.make_policy(op.policy)):
                    await self.arun(op.body)
            elif isinstance(op, Try):
                try:
                    await self.arun(op.body)
                except CATCHABLE:
                    pass
            elif isinstance(op, Thread):
                # A sync worker thread handed the task's context.
                await asyncio.get_running_loop().run_in_executor(
                    None, airlock.carry_context(self.run), op.body
                )
            else:
                try:
                    with self.tx():
                        async with self.scope_for(op):
                            await self.arun(op.body)
                except CATCHABLE:
                    if not op.catch:
                        raise


class _Undispatched(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.named: list[list[airlock.Intent]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "airlock_undispatched"):
            self.named.append(record.airlock_undispatched)


@contextmanager
def _outcome(runner: Runner, root_box: list[airlock.Scope], result: list[Outcome]) -> Iterator[None]:
    escaped = None
    handler = _Undispatched()
    logger = logging.getLogger("airlock")
    logger.addHandler(handler)
    pair = lambda i: (i.name, i.args[0])  # noqa: E731
    try:
        yield
    except Boom:
        escaped = "boom"
    except airlock.PolicyViolation:
        escaped = "violation"
    except airlock.DispatchError:
        escaped = "dispatch"
    except KeyboardInterrupt as exc:
        escaped = "interrupt"
        # ...and the intents it left undispatched are named in a note, too.
        assert [n for n in exc.__notes__ if "not dispatched" in n]
    finally:
        logger.removeHandler(handler)
    assert len(handler.named) <= 1
    undispatched = [pair(i) for i in handler.named[0]] if handler.named else []
    [root] = root_box
    own = [pair(i) for i in root.own_intents]
    captured = [pair(i) for i in root.captured_intents]
    result.append(Outcome(runner.dispatched, own, captured, escaped, runner.judged, undispatched))
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
    inner_tx = Scope(
        ("allow",), None, (A, Scope(("allow",), None, (B,), False, tx=True), Rollback()), False, tx=True
    )
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
        _root(Local(("shared", 0), (Scope(("shared", 0), None, (A, B), False),))),
        _root(Thread((A, Scope(("drop",), None, (B,), False))), A),
        _root(A, Enqueue(INTERRUPTING), B),
        _root(
            Scope(("allow",), None, (A, Scope(("allow",), None, (B,), False), Rollback()), False, tx=True), A
        ),
    ]:
        assert run_airlock(program) == run_model(program)
        assert run_airlock_async(program) == run_model(program)
