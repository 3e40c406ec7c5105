"""SPEC §2.3: scope(), Scope and its imperative lifecycle."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import pytest

import airlock
from core_helpers import Recorder

# -- with / async with ---------------------------------------------------------


def test_with_flushes_on_normal_exit() -> None:
    rec = Recorder()
    with airlock.scope() as s:
        assert isinstance(s, airlock.Scope)
        assert s.is_active
        assert airlock.get_current_scope() is s
        airlock.enqueue(rec.task("a"), 1)
        airlock.enqueue(rec.task("b"), 2)
        assert rec.calls == []
    assert rec.names == ["a", "b"]
    assert s.is_flushed and not s.is_active and not s.is_discarded
    assert airlock.get_current_scope() is None


def test_with_discards_on_exception_and_lets_it_propagate() -> None:
    rec = Recorder()
    with pytest.raises(KeyError):
        with airlock.scope() as s:
            airlock.enqueue(rec.task("a"))
            raise KeyError("boom")
    assert rec.calls == []
    assert s.is_discarded and not s.is_flushed
    assert airlock.get_current_scope() is None


def test_with_discards_on_base_exception() -> None:
    rec = Recorder()
    with pytest.raises(KeyboardInterrupt):
        with airlock.scope() as s:
            airlock.enqueue(rec.task("a"))
            raise KeyboardInterrupt
    assert rec.calls == [] and s.is_discarded


def test_async_with_flushes_and_discards() -> None:
    asyncio.run(_async_with_flushes_and_discards())


async def _async_with_flushes_and_discards() -> None:
    rec = Recorder()
    async with airlock.scope() as s:
        airlock.enqueue(rec.task("a"))
        await asyncio.sleep(0)
        assert rec.calls == []
    assert rec.names == ["a"] and s.is_flushed
    with pytest.raises(ValueError):
        async with airlock.scope() as s2:
            airlock.enqueue(rec.task("b"))
            raise ValueError
    assert rec.names == ["a"] and s2.is_discarded


# -- scope() arguments ---------------------------------------------------------


def test_policy_positional_and_keyword() -> None:
    drop = airlock.DropAll()
    assert airlock.scope(drop).policy is drop
    assert airlock.scope(policy=drop).policy is drop
    rec = Recorder()
    with airlock.scope(airlock.DropAll()):
        airlock.enqueue(rec.task("a"))
    assert rec.calls == []


def test_defaults_come_from_configure_and_explicit_arguments_win() -> None:
    configured = airlock.DropAll()

    def configured_executor(intent: airlock.Intent) -> None:
        pass

    airlock.configure(policy=configured, executor=configured_executor)
    s = airlock.scope()
    assert s.policy is configured and s.executor is configured_executor
    assert airlock.Scope().policy is configured

    explicit = airlock.AllowAll()
    assert airlock.scope(explicit).policy is explicit
    assert airlock.Scope(executor=print).executor is print


class TaggedScope(airlock.Scope):
    def __init__(self, policy: Any = None, *, tag: str = "none", **kwargs: Any) -> None:
        super().__init__(policy, **kwargs)
        self.tag = tag


class SubTaggedScope(TaggedScope):
    pass


def test_cls_picks_the_scope_class() -> None:
    s = airlock.scope(_cls=TaggedScope, tag="x")
    assert type(s) is TaggedScope and s.tag == "x"
    airlock.configure(scope_cls=TaggedScope)
    assert type(airlock.scope()) is TaggedScope
    assert type(airlock.scope(_cls=airlock.Scope)) is airlock.Scope


def test_scope_kwargs_from_configure() -> None:
    airlock.configure(scope_cls=TaggedScope, scope_kwargs={"tag": "configured"})
    s = airlock.scope()
    assert type(s) is TaggedScope and s.tag == "configured"
    assert airlock.scope(tag="explicit").tag == "explicit"  # explicit wins
    assert airlock.scope(_cls=SubTaggedScope).tag == "configured"  # subclasses get them too
    # An unrelated class does not get keyword arguments it may not accept.
    assert type(airlock.scope(_cls=airlock.Scope)) is airlock.Scope


def test_scope_kwargs_reach_the_scope_executor_and_origin() -> None:
    airlock.configure(scope_kwargs={"origin": "worker"})
    with airlock.scope() as s:
        intent = airlock.enqueue(print)
    assert s.origin == "worker" and intent.origin == "worker"


@pytest.mark.parametrize(
    "bad_policy", [airlock.DropAll, object(), "DropAll"], ids=["policy-class", "object", "string"]
)
def test_bad_policy_is_a_type_error_at_construction(bad_policy: Any) -> None:
    with pytest.raises(TypeError, match="policy"):
        airlock.scope(policy=bad_policy)
    with pytest.raises(TypeError, match="policy"):
        airlock.Scope(bad_policy)
    with pytest.raises(TypeError, match="policy"):
        airlock.Scope(bad_policy, executor=print)


def test_policy_class_error_suggests_the_instance() -> None:
    with pytest.raises(TypeError, match=r"DropAll\(\)"):
        airlock.scope(policy=airlock.DropAll)


def test_bad_executor_is_a_type_error_at_construction() -> None:
    with pytest.raises(TypeError, match="executor"):
        airlock.Scope(executor="sync")  # type: ignore[arg-type]


def test_duck_typed_policy_is_accepted() -> None:
    class OnlyA:
        def on_enqueue(self, intent: airlock.Intent) -> None:
            pass

        def allows(self, intent: airlock.Intent) -> bool:
            return intent.name == "a"

    rec = Recorder()
    with airlock.scope(OnlyA()):
        airlock.enqueue(rec.task("a"))
        airlock.enqueue(rec.task("b"))
    assert rec.names == ["a"]


# -- the imperative lifecycle ---------------------------------------------------


def test_imperative_lifecycle_flush() -> None:
    rec = Recorder()
    s = airlock.Scope()
    assert not s.is_active and not s.is_flushed and not s.is_discarded
    assert s.enter() is s
    assert s.is_active and airlock.get_current_scope() is s
    a = airlock.enqueue(rec.task("a"))
    s.exit()
    assert not s.is_active and airlock.get_current_scope() is None
    assert rec.calls == []  # exit alone dispatches nothing
    assert s.should_flush(None) is True
    assert s.should_flush(ValueError()) is False
    assert s.flush() == [a]
    assert rec.names == ["a"]
    assert s.is_flushed


def test_imperative_lifecycle_discard_returns_what_it_dropped() -> None:
    rec = Recorder()
    s = airlock.Scope()
    s.enter()
    a = airlock.enqueue(rec.task("a"))
    b = airlock.enqueue(rec.task("b"))
    s.exit()
    assert s.discard() == [a, b]
    assert rec.calls == [] and s.is_discarded


def test_flush_returns_only_what_policies_allowed() -> None:
    rec = Recorder()
    with airlock.scope(airlock.BlockTasks({"b"})) as s:
        a = airlock.enqueue(rec.task("a"))
        airlock.enqueue(rec.task("b"))
        c = airlock.enqueue(rec.task("c"))
    # with-block drives flush(); check its return through the imperative API too
    assert rec.names == ["a", "c"]
    s2 = airlock.Scope(airlock.BlockTasks({"b"}))
    s2.enter()
    a2 = airlock.enqueue(rec.task("a"))
    airlock.enqueue(rec.task("b"))
    s2.exit()
    assert s2.flush() == [a2]
    assert [a, c] == [i for i in s.intents if i.name != "b"]


def test_empty_scope_flush_and_discard_return_empty_lists() -> None:
    s = airlock.Scope()
    s.enter()
    s.exit()
    assert s.flush() == []
    s2 = airlock.Scope()
    s2.enter()
    s2.exit()
    assert s2.discard() == []


def _exited() -> airlock.Scope:
    s = airlock.Scope()
    s.enter()
    s.exit()
    return s


def _flushed() -> airlock.Scope:
    s = _exited()
    s.flush()
    return s


def _discarded() -> airlock.Scope:
    s = _exited()
    s.discard()
    return s


def _active() -> airlock.Scope:
    return airlock.Scope().enter()


STATES = {
    "new": airlock.Scope,
    "active": _active,
    "exited": _exited,
    "flushed": _flushed,
    "discarded": _discarded,
}


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("active", "enter"),
        ("exited", "enter"),
        ("flushed", "enter"),
        ("discarded", "enter"),
        ("new", "exit"),
        ("exited", "exit"),
        ("flushed", "exit"),
        ("discarded", "exit"),
        ("active", "flush"),
        ("flushed", "flush"),
        ("discarded", "flush"),
        ("active", "discard"),
        ("flushed", "discard"),
        ("discarded", "discard"),
    ],
)
def test_lifecycle_misuse_is_a_scope_state_error_naming_the_state(state: str, action: str) -> None:
    # Run in a private context so an "active" scope does not leak into other tests.
    def attempt() -> None:
        s = STATES[state]()
        with pytest.raises(airlock.ScopeStateError) as info:
            getattr(s, action)()
        assert state in str(info.value)
        assert action in str(info.value)

    contextvars.copy_context().run(attempt)


@pytest.mark.parametrize("state", ["active", "flushed", "discarded"])
def test_aflush_misuse_is_a_scope_state_error(state: str) -> None:
    async def attempt() -> None:
        s = STATES[state]()
        with pytest.raises(airlock.ScopeStateError, match=state):
            await s.aflush()

    asyncio.run(attempt())  # runs in its own context copy


def test_flush_while_active_hints_to_exit_first() -> None:
    def attempt() -> None:
        s = _active()
        with pytest.raises(airlock.ScopeStateError, match=r"exit\(\)"):
            s.flush()

    contextvars.copy_context().run(attempt)


def test_failed_lifecycle_call_changes_nothing() -> None:
    rec = Recorder()
    s = airlock.Scope()
    s.enter()
    airlock.enqueue(rec.task("a"))
    with pytest.raises(airlock.ScopeStateError):
        s.flush()
    with pytest.raises(airlock.ScopeStateError):
        s.discard()
    assert s.is_active and airlock.get_current_scope() is s
    s.exit()
    s.flush()
    assert rec.names == ["a"]


def test_adding_to_a_flushed_scope_is_a_scope_state_error() -> None:
    # A context copied while the scope was active (a job handed to a pool)
    # outlives the scope: its enqueue must fail loudly, not vanish.
    rec = Recorder()
    with airlock.scope() as s:
        late = airlock.carry_context(lambda: airlock.enqueue(rec.task("late")))
    with pytest.raises(airlock.ScopeStateError, match="flushed"):
        late()
    assert rec.calls == [] and s.intents == []


def test_adding_to_a_discarded_scope_is_a_scope_state_error() -> None:
    rec = Recorder()
    with pytest.raises(RuntimeError):
        with airlock.scope():
            late = airlock.carry_context(lambda: airlock.enqueue(rec.task("late")))
            raise RuntimeError
    with pytest.raises(airlock.ScopeStateError, match="discarded"):
        late()
    assert rec.calls == []


def test_flushing_into_an_already_flushed_parent_is_a_scope_state_error() -> None:
    rec = Recorder()
    done = threading.Event()
    errors: list[BaseException] = []

    def child() -> None:
        try:
            done.wait(5)
            with airlock.scope():
                airlock.enqueue(rec.task("orphan"))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    with airlock.scope():
        job = threading.Thread(target=airlock.carry_context(child))
        job.start()
    done.set()
    job.join(5)
    assert len(errors) == 1 and isinstance(errors[0], airlock.ScopeStateError)
    assert "flushed" in str(errors[0])
    assert rec.calls == []


def test_exit_from_another_context_is_refused_and_changes_nothing() -> None:
    # SPEC §5.2: context misuse is detected, not absorbed.
    with airlock.scope() as outer:
        inner = airlock.Scope().enter()

        def finish_elsewhere() -> Any:
            with pytest.raises(airlock.ScopeStateError, match="different context"):
                inner.exit()
            return airlock.get_current_scope()

        # In a copy of this context inner is current, but it was entered here.
        assert contextvars.copy_context().run(finish_elsewhere) is inner
        assert inner.is_active and airlock.get_current_scope() is inner
        inner.exit()
        inner.flush()
    assert inner.is_flushed and outer.is_flushed
    assert airlock.get_current_scope() is None


def test_exit_where_the_scope_is_not_current_is_refused() -> None:
    s = airlock.Scope().enter()
    try:

        def elsewhere() -> None:
            # A context that never saw the scope (a fresh thread's).
            with pytest.raises(airlock.ScopeStateError, match="not the innermost active scope"):
                s.exit()

        contextvars.Context().run(elsewhere)
        assert s.is_active and airlock.get_current_scope() is s
    finally:
        s.exit()
    assert airlock.get_current_scope() is None


def test_exiting_an_outer_scope_while_an_inner_one_is_active_is_refused() -> None:
    outer = airlock.Scope().enter()
    inner = airlock.Scope().enter()
    with pytest.raises(airlock.ScopeStateError, match="still active"):
        outer.exit()
    assert airlock.get_current_scope() is inner and outer.is_active is False and inner.is_active
    inner.exit()
    assert outer.is_active
    outer.exit()
    assert airlock.get_current_scope() is None


def test_repr_names_class_state_and_policy() -> None:
    s = airlock.Scope(airlock.DropAll())
    assert "Scope" in repr(s) and "new" in repr(s) and "DropAll()" in repr(s)
    with s:
        airlock.enqueue(print)
        assert "active" in repr(s) and "intents=1" in repr(s)
    assert "flushed" in repr(s)


# -- extension points ----------------------------------------------------------


def test_should_flush_override() -> None:
    class AlwaysFlush(airlock.Scope):
        def should_flush(self, error: BaseException | None) -> bool:
            return True

    class NeverFlush(airlock.Scope):
        def should_flush(self, error: BaseException | None) -> bool:
            return False

    rec = Recorder()
    with pytest.raises(ValueError):
        with AlwaysFlush() as s1:
            airlock.enqueue(rec.task("despite_error"))
            raise ValueError
    with NeverFlush() as s2:
        airlock.enqueue(rec.task("never"))
    assert rec.names == ["despite_error"]
    assert s1.is_flushed and s2.is_discarded


def test_should_flush_sees_the_error() -> None:
    seen: list[Any] = []

    class Spy(airlock.Scope):
        def should_flush(self, error: BaseException | None) -> bool:
            seen.append(error)
            return super().should_flush(error)

    err = ValueError("x")
    with pytest.raises(ValueError):
        with Spy():
            raise err
    with Spy():
        pass
    assert seen == [err, None]


def test_dispatch_all_override_defers_dispatch() -> None:
    pending: list[list[airlock.Intent]] = []

    class Deferred(airlock.Scope):
        def _dispatch_all(self, intents: list[airlock.Intent]) -> None:
            pending.append(intents)

        def commit(self) -> None:
            for batch in pending:
                super()._dispatch_all(batch)

    rec = Recorder()
    with Deferred() as s:
        a = airlock.enqueue(rec.task("a"))
    assert rec.calls == [] and pending == [[a]]
    s.commit()
    assert rec.names == ["a"]


def test_dispatch_all_not_called_when_nothing_to_dispatch() -> None:
    calls: list[Any] = []

    class Spy(airlock.Scope):
        def _dispatch_all(self, intents: list[airlock.Intent]) -> None:
            calls.append(intents)

    with Spy(airlock.DropAll()):
        airlock.enqueue(print)
    with Spy():
        pass
    assert calls == []


def test_executor_receives_each_intent() -> None:
    got: list[airlock.Intent] = []
    with airlock.Scope(executor=got.append):
        a = airlock.enqueue(print, 1)
        b = airlock.enqueue(print, 2)
    assert got == [a, b]


def test_enqueue_checks_extension_point() -> None:
    checked: list[str] = []

    class Checking(airlock.Scope):
        def enqueue_checks(self) -> Any:
            yield from super().enqueue_checks()
            yield lambda intent: checked.append(intent.name)

    with Checking(airlock.AssertNoEffects()) as s:
        with pytest.raises(airlock.PolicyViolation):
            airlock.enqueue(print)
    assert s.intents == [] and checked == []  # the policy refused first

    rec = Recorder()
    with Checking():
        with airlock.scope():
            airlock.enqueue(rec.task("nested"))
    assert checked == ["nested"] and rec.names == ["nested"]
