"""SPEC §2.4 (which policies judge an intent) and §2.5 (nesting)."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from typing import Any

import pytest

import airlock
from core_helpers import AllowNames, PassThrough, Recorder, passthrough_scope


def test_inner_drop_all_under_permissive_outer_dispatches_nothing() -> None:
    rec = Recorder()
    with airlock.scope(airlock.AllowAll()) as outer:
        with airlock.scope(airlock.DropAll()) as inner:
            airlock.enqueue(rec.task("dry_run"))
        # Captured, still judged by the inner policy when the outer dispatches.
        assert [i.name for i in outer.captured_intents] == ["dry_run"]
        airlock.enqueue(rec.task("real"))
    assert rec.names == ["real"]
    assert [i.name for i in inner.intents] == ["dry_run"]


def test_middle_policy_judges_intents_passing_through_it() -> None:
    rec = Recorder()
    with airlock.scope():
        with airlock.scope(airlock.BlockTasks({"x"})):
            with airlock.scope():
                airlock.enqueue(rec.task("x"))
                airlock.enqueue(rec.task("y"))
    assert rec.names == ["y"]


def test_outer_policy_has_the_last_word() -> None:
    rec = Recorder()
    with airlock.scope(airlock.DropAll()) as outer:
        with airlock.scope():
            with airlock.scope():
                airlock.enqueue(rec.task("x"))
    assert rec.calls == []
    assert [i.name for i in outer.captured_intents] == ["x"]


def test_assert_no_effects_on_outer_raises_at_nested_enqueue() -> None:
    rec = Recorder()
    with airlock.scope(airlock.AssertNoEffects()) as outer:
        with airlock.scope() as inner:
            with airlock.scope():
                with pytest.raises(airlock.PolicyViolation, match="sneaky"):
                    airlock.enqueue(rec.task("sneaky"))
            assert inner.intents == []
    assert rec.calls == [] and outer.intents == []


def test_local_assert_no_effects_raises_at_the_enqueue_line() -> None:
    with airlock.scope() as s:
        with airlock.policy(airlock.AssertNoEffects()):
            with pytest.raises(airlock.PolicyViolation) as info:
                airlock.enqueue(print, "x")
        assert s.intents == []
    assert "print" in str(info.value)
    # The traceback ends in the policy, called from the enqueue in this test.
    frames = [f.f_code.co_name for f, _ in traceback.walk_tb(info.tb)]
    assert frames[0] == "test_local_assert_no_effects_raises_at_the_enqueue_line"


def test_local_policy_is_judged_at_flush_even_after_its_block_ended() -> None:
    rec = Recorder()
    with airlock.scope() as s:
        with airlock.policy(airlock.BlockTasks({"x"})):
            airlock.enqueue(rec.task("x"))
            airlock.enqueue(rec.task("y"))
        airlock.enqueue(rec.task("x"))  # outside the block: allowed
        assert [i.name for i in s.intents] == ["x", "y", "x"]  # still buffered
    assert rec.names == ["y", "x"]


def test_local_policy_applies_in_whatever_scope_is_active() -> None:
    rec = Recorder()
    with airlock.policy(AllowNames("keep")):
        with airlock.scope():
            airlock.enqueue(rec.task("keep"))
            airlock.enqueue(rec.task("drop"))
            with airlock.scope():
                airlock.enqueue(rec.task("drop"))
                airlock.enqueue(rec.task("keep"), "nested")
    assert rec.calls == [("keep", (), {}), ("keep", ("nested",), {})]


def test_local_policy_inside_nested_scope_survives_capture() -> None:
    rec = Recorder()
    with airlock.scope() as outer:
        with airlock.scope():
            with airlock.policy(airlock.DropAll()):
                airlock.enqueue(rec.task("x"))
            airlock.enqueue(rec.task("y"))
        # Local policies judge once, when the intent is finally dispatched.
        assert [i.name for i in outer.captured_intents] == ["x", "y"]
    assert rec.names == ["y"]


def test_on_enqueue_order_innermost_first() -> None:
    order: list[str] = []

    class Spy(airlock.Policy):
        def __init__(self, label: str) -> None:
            self.label = label

        def on_enqueue(self, intent: airlock.Intent) -> None:
            order.append(self.label)

    with airlock.scope(Spy("outer scope")):
        with airlock.policy(Spy("outer local")):
            with airlock.scope(Spy("inner scope")):
                with airlock.policy(Spy("inner local")):
                    airlock.enqueue(print)
    assert order == ["inner local", "outer local", "inner scope", "outer scope"]


def test_a_policy_shared_by_nested_scopes_sees_each_enqueue_once() -> None:
    seen: list[str] = []

    class Spy(airlock.Policy):
        def on_enqueue(self, intent: airlock.Intent) -> None:
            seen.append(intent.name)

    airlock.configure(policy=Spy())
    with airlock.scope():
        with airlock.scope():
            airlock.enqueue(print)
    assert seen == ["print"]


def test_provenance_views_through_several_levels() -> None:
    rec = Recorder()
    with airlock.scope() as outer:
        o1 = airlock.enqueue(rec.task("o1"))
        with airlock.scope() as middle:
            m1 = airlock.enqueue(rec.task("m1"))
            with airlock.scope() as inner:
                i1 = airlock.enqueue(rec.task("i1"))
                assert inner.intents == inner.own_intents == [i1]
                assert inner.captured_intents == []
            assert inner.is_flushed
            assert inner.intents == [i1]  # still inspectable after it ended
            m2 = airlock.enqueue(rec.task("m2"))
            assert middle.intents == [m1, i1, m2]
            assert middle.own_intents == [m1, m2]
            assert middle.captured_intents == [i1]
            assert outer.intents == [o1]
        assert outer.intents == [o1, m1, i1, m2]
        assert outer.own_intents == [o1]
        assert outer.captured_intents == [m1, i1, m2]
        o2 = airlock.enqueue(rec.task("o2"))
        assert outer.own_intents == [o1, o2]
        assert outer.intents == [o1, m1, i1, m2, o2]
    assert rec.names == ["o1", "m1", "i1", "m2", "o2"]


def test_views_are_copies() -> None:
    with airlock.scope() as s:
        airlock.enqueue(print)
        s.intents.clear()
        s.own_intents.clear()
        s.captured_intents.append(None)  # type: ignore[arg-type]
        assert len(s.intents) == 1 and s.captured_intents == []


def test_parent_view() -> None:
    with airlock.scope() as outer:
        assert outer.parent is None
        with airlock.scope() as inner:
            assert inner.parent is outer


def test_inner_flush_returns_nothing_when_everything_is_captured() -> None:
    with airlock.scope():
        inner = airlock.Scope().enter()
        airlock.enqueue(print)
        inner.exit()
        assert inner.flush() == []


def test_inner_discard_drops_its_intents() -> None:
    rec = Recorder()
    with airlock.scope() as outer:
        airlock.enqueue(rec.task("before"))
        with pytest.raises(ValueError):
            with airlock.scope() as inner:
                airlock.enqueue(rec.task("inner"))
                with airlock.scope():
                    airlock.enqueue(rec.task("innermost"))
                raise ValueError
        assert inner.is_discarded
        assert [i.name for i in inner.intents] == ["inner", "innermost"]
        assert outer.captured_intents == []
        airlock.enqueue(rec.task("after"))
    assert rec.names == ["before", "after"]


def test_custom_before_descendant_flushes_lets_some_intents_through() -> None:
    rec = Recorder()
    outer_executor: list[str] = []

    def exec_outer(intent: airlock.Intent) -> None:
        outer_executor.append(intent.name)

    with passthrough_scope("now")(executor=exec_outer) as outer:
        inner = airlock.Scope()
        inner.enter()
        now = airlock.enqueue(rec.task("now"))
        later = airlock.enqueue(rec.task("later"))
        inner.exit()
        assert inner.flush() == [now]  # dispatched by the inner scope, now
        assert rec.names == ["now"]
        assert outer.captured_intents == [later]
    assert outer_executor == ["later"]  # the outer scope dispatches what it captured
    assert rec.names == ["now"]


def test_before_descendant_flushes_receives_the_exiting_scope_and_its_intents() -> None:
    calls: list[tuple[Any, list[str]]] = []

    class Spy(airlock.Scope):
        def before_descendant_flushes(
            self, exiting_scope: airlock.Scope, intents: list[airlock.Intent]
        ) -> list[airlock.Intent]:
            calls.append((exiting_scope, [i.name for i in intents]))
            return super().before_descendant_flushes(exiting_scope, intents)

    with Spy():
        with Spy() as middle:
            with airlock.scope(airlock.BlockTasks({"b"})) as inner:
                airlock.enqueue(print, _name="a")
                airlock.enqueue(print, _name="b")
            with airlock.scope(airlock.DropAll()) as dropping:
                airlock.enqueue(print, _name="c")
    # Only the immediate parent is asked when it captures everything; then the
    # middle scope's own flush asks the outer one. Policies judge later, at
    # the final dispatch, so every intent is offered.
    assert calls == [(inner, ["a", "b"]), (dropping, ["c"]), (middle, ["a", "b", "c"])]


def test_passthrough_stops_at_an_ancestor_that_captures() -> None:
    rec = Recorder()
    with airlock.scope() as outer:
        with passthrough_scope("x")() as middle:
            with airlock.scope():
                airlock.enqueue(rec.task("x"))
                airlock.enqueue(rec.task("y"))
            # middle let x through, but outer captured it
            assert [i.name for i in middle.captured_intents] == ["y"]
            assert [i.name for i in outer.captured_intents] == ["x"]
            assert rec.calls == []
    assert rec.names == ["x", "y"]


def test_passthrough_at_every_level_dispatches_from_the_inner_scope() -> None:
    rec = Recorder()
    with passthrough_scope("x")() as outer:
        with passthrough_scope("x")():
            with airlock.scope():
                airlock.enqueue(rec.task("x"))
            assert rec.names == ["x"]
        assert outer.intents == []


def test_before_descendant_flushes_order_is_kept_fifo() -> None:
    class Reversing(airlock.Scope):
        def before_descendant_flushes(
            self, exiting_scope: airlock.Scope, intents: list[airlock.Intent]
        ) -> list[airlock.Intent]:
            return list(reversed(intents))

    rec = Recorder()
    with Reversing():
        with airlock.scope():
            airlock.enqueue(rec.task("a"))
            airlock.enqueue(rec.task("b"))
    assert rec.names == ["a", "b"]  # policies and hooks filter, never reorder


@pytest.mark.parametrize(
    "returned",
    [
        lambda intents: tuple(intents),
        lambda intents: None,
        lambda intents: (i for i in intents),
        lambda intents: set(),
    ],
    ids=["tuple", "None", "generator", "set"],
)
def test_before_descendant_flushes_returning_a_non_list_is_a_type_error(
    returned: Callable[[list[airlock.Intent]], Any],
) -> None:
    class Bad(airlock.Scope):
        def before_descendant_flushes(
            self, exiting_scope: airlock.Scope, intents: list[airlock.Intent]
        ) -> Any:
            return returned(intents)

    rec = Recorder()
    with Bad():
        with pytest.raises(TypeError, match="before_descendant_flushes.*must return a list") as info:
            with airlock.scope():
                airlock.enqueue(rec.task("t"))
        assert "Bad" in str(info.value)
    assert rec.calls == []


def test_before_descendant_flushes_returning_foreign_intents_is_an_error() -> None:
    rec = Recorder()
    with airlock.scope():
        stranger = airlock.enqueue(rec.task("stranger"))

    class Smuggler(airlock.Scope):
        def before_descendant_flushes(
            self, exiting_scope: airlock.Scope, intents: list[airlock.Intent]
        ) -> list[airlock.Intent]:
            return [*intents, stranger]

    rec.calls.clear()
    with Smuggler():
        with pytest.raises(airlock.UsageError, match="not given"):
            with airlock.scope():
                airlock.enqueue(rec.task("t"))
    assert rec.calls == []


def test_captured_intents_use_the_dispatching_scopes_executor() -> None:
    outer_ran: list[str] = []
    inner_ran: list[str] = []
    with airlock.Scope(executor=lambda i: outer_ran.append(i.name)):
        with airlock.Scope(executor=lambda i: inner_ran.append(i.name)):
            airlock.enqueue(print, _name="x")
    assert outer_ran == ["x"] and inner_ran == []


def test_caught_exception_inside_outer_scope_keeps_outer_intents() -> None:
    rec = Recorder()
    with airlock.scope():
        airlock.enqueue(rec.task("a"))
        try:
            with airlock.scope():
                airlock.enqueue(rec.task("b"))
                raise RuntimeError
        except RuntimeError:
            pass
        airlock.enqueue(rec.task("c"))
    assert rec.names == ["a", "c"]


# -- conditions (scope subclasses tying intents to transactions) ---------------


class Savepoint:
    def __init__(self) -> None:
        self.alive = True


class TxScope(airlock.Scope):
    """Attaches the current savepoint's liveness to every intent enqueued in it."""

    def __init__(self, policy: Any = None, *, savepoint: Savepoint, **kw: Any) -> None:
        self.savepoint = savepoint
        super().__init__(policy, **kw)

    def enqueue_checks(self) -> Iterable[Callable[[airlock.Intent], None]]:
        yield from super().enqueue_checks()
        sp = self.savepoint
        yield lambda intent: intent.add_condition(lambda: sp.alive)


def test_condition_false_at_flush_voids_the_intent() -> None:
    rec = Recorder()
    sp = Savepoint()
    with TxScope(savepoint=sp) as s:
        airlock.enqueue(rec.task("rolled_back"))
        sp.alive = False
    assert rec.calls == [] and s.is_flushed


def test_condition_voids_the_intent_after_capture() -> None:
    rec = Recorder()
    inner_sp = Savepoint()
    with airlock.scope() as outer:
        with TxScope(savepoint=inner_sp):
            airlock.enqueue(rec.task("x"))
            with airlock.scope():  # nested in TxScope: the check applies here too
                airlock.enqueue(rec.task("y"))
        assert [i.name for i in outer.captured_intents] == ["x", "y"]
        inner_sp.alive = False  # the savepoint rolls back after the inner scope ended
        airlock.enqueue(rec.task("z"))
    assert rec.names == ["z"]


def test_condition_voids_intents_let_through_by_before_descendant_flushes() -> None:
    rec = Recorder()
    sp = Savepoint()

    class Tx(TxScope, PassThrough):
        passthrough = frozenset({"x"})

    with Tx(savepoint=sp):
        with airlock.scope():
            airlock.enqueue(rec.task("x"))
            sp.alive = False
    assert rec.calls == []


def test_condition_true_dispatches() -> None:
    rec = Recorder()
    with TxScope(savepoint=Savepoint()):
        with airlock.scope():
            airlock.enqueue(rec.task("ok"))
    assert rec.names == ["ok"]
