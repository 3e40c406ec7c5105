"""SPEC §5.2: which policies judge an intent, how often, and how they are looked up."""

from __future__ import annotations

import logging
from typing import Any
from unittest import mock

import pytest

import airlock
from core_helpers import Recorder

# -- policies are objects, their methods looked up when called -------------------


def test_mock_patch_object_on_a_policy_instance_takes_effect() -> None:
    policy = airlock.AllowAll()
    rec = Recorder()
    with mock.patch.object(policy, "allows", return_value=False) as allows:
        with airlock.scope(policy):
            airlock.enqueue(rec.task("t"))
    assert rec.calls == [] and allows.call_count == 1
    with airlock.scope(policy):  # unpatched again
        airlock.enqueue(rec.task("t"))
    assert rec.names == ["t"]


def test_patching_allows_after_the_first_enqueue_still_takes_effect() -> None:
    policy = airlock.AllowAll()
    rec = Recorder()
    with airlock.scope(policy):
        airlock.enqueue(rec.task("t"))
        policy.allows = lambda intent: False  # type: ignore[method-assign]
    assert rec.calls == []


def test_an_instance_attribute_on_enqueue_is_asked() -> None:
    seen: list[str] = []
    policy = airlock.AllowAll()
    policy.on_enqueue = lambda intent: seen.append(intent.name)  # type: ignore[method-assign]
    with airlock.scope(policy):
        airlock.enqueue(print, _name="x")
    assert seen == ["x"]


def test_a_mock_with_both_methods_is_a_policy() -> None:
    policy = mock.Mock(spec_set=["on_enqueue", "allows"])
    policy.allows.return_value = False
    rec = Recorder()
    with airlock.scope(policy):
        intent = airlock.enqueue(rec.task("t"))
    policy.on_enqueue.assert_called_once_with(intent)
    policy.allows.assert_called_once_with(intent)
    assert rec.calls == []


def test_a_policy_class_patched_after_first_use_takes_effect() -> None:
    class Counting(airlock.Policy):
        pass

    rec = Recorder()
    with airlock.scope(Counting()):
        airlock.enqueue(rec.task("first"))
    with (
        mock.patch.object(Counting, "allows", return_value=False),
        mock.patch.object(Counting, "on_enqueue", side_effect=airlock.PolicyViolation("patched")),
    ):
        with airlock.scope(Counting()):
            with pytest.raises(airlock.PolicyViolation, match="patched"):
                airlock.enqueue(rec.task("refused"))
            airlock_scope = airlock.get_current_scope()
            assert airlock_scope is not None and airlock_scope.intents == []
    with mock.patch.object(Counting, "allows", return_value=False):
        with airlock.scope(Counting()):
            airlock.enqueue(rec.task("dropped"))
    assert rec.names == ["first"]


def test_the_shared_default_policy_class_patched_later_takes_effect() -> None:
    rec = Recorder()
    with airlock.scope():
        airlock.enqueue(rec.task("before"))
    with mock.patch.object(airlock.AllowAll, "allows", return_value=False):
        with airlock.scope():
            airlock.enqueue(rec.task("during"))
    assert rec.names == ["before"]


def test_an_attribute_outside_the_protocol_changes_nothing_on_a_duck_typed_policy() -> None:
    class Duck:
        def on_enqueue(self, intent: airlock.Intent) -> None:
            pass

        def allows(self, intent: airlock.Intent) -> bool:
            return True

        def select(self, intents: list[airlock.Intent]) -> list[airlock.Intent]:
            raise AssertionError("select is not part of the protocol; never called")

    rec = Recorder()
    with airlock.scope(Duck()):  # type: ignore[arg-type]
        airlock.enqueue(rec.task("t"))
    assert rec.names == ["t"]


def test_duck_typed_policy_is_an_airlock_policy() -> None:
    class Duck:
        def on_enqueue(self, intent: airlock.Intent) -> None: ...

        def allows(self, intent: airlock.Intent) -> bool:
            return True

    assert isinstance(Duck(), airlock.Policy)
    assert not isinstance(object(), airlock.Policy)
    assert airlock.PolicyProtocol is airlock.Policy


# -- one judgement per distinct instance per decision --------------------------------


class Spy(airlock.Policy):
    def __init__(self, label: str, log: list[tuple[str, str, str]], allow: bool = True) -> None:
        self.label, self.log, self.allow = label, log, allow

    def on_enqueue(self, intent: airlock.Intent) -> None:
        self.log.append(("on_enqueue", self.label, intent.name))

    def allows(self, intent: airlock.Intent) -> bool:
        self.log.append(("allows", self.label, intent.name))
        return self.allow


def test_a_shared_policy_judges_once_at_enqueue_and_once_at_the_final_dispatch() -> None:
    log: list[tuple[str, str, str]] = []
    shared = Spy("shared", log)
    rec = Recorder()
    with airlock.scope(shared):
        with airlock.scope(shared):
            with airlock.policy(shared):
                airlock.enqueue(rec.task("x"))
        assert log == [("on_enqueue", "shared", "x")]  # the inner flush only handed it on
    assert log == [("on_enqueue", "shared", "x"), ("allows", "shared", "x")]
    assert rec.names == ["x"]


def test_allows_is_asked_only_when_the_intent_is_finally_dispatched() -> None:
    log: list[tuple[str, str, str]] = []
    with airlock.scope(Spy("outer", log)):
        with airlock.scope(Spy("inner", log)):
            airlock.enqueue(print, _name="x")
        assert [entry for entry in log if entry[0] == "allows"] == []
    # At the end: every scope it passed through, innermost first.
    assert [entry for entry in log if entry[0] == "allows"] == [
        ("allows", "inner", "x"),
        ("allows", "outer", "x"),
    ]


def test_an_outer_scope_that_discards_means_nobody_judges_at_flush() -> None:
    log: list[tuple[str, str, str]] = []
    with pytest.raises(RuntimeError):
        with airlock.scope():
            with airlock.scope(Spy("inner", log)):
                airlock.enqueue(print, _name="x")
            raise RuntimeError("the unit of work failed")
    assert log == [("on_enqueue", "inner", "x")]


def test_log_on_flush_logs_once_when_dispatched_and_never_a_discarded_intent(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="airlock.audit")
    audit = airlock.LogOnFlush("airlock.audit")
    with airlock.scope(audit):
        with airlock.scope(audit):
            airlock.enqueue(print, "kept", _name="kept")
    with pytest.raises(RuntimeError):
        with airlock.scope():
            with airlock.scope(audit):
                airlock.enqueue(print, "lost", _name="lost")
            raise RuntimeError
    messages = [r.getMessage() for r in caplog.records if r.name == "airlock.audit"]
    assert messages == ["airlock: flushing kept('kept')"]


def test_local_policies_are_asked_innermost_first_and_stop_at_the_first_refusal() -> None:
    log: list[tuple[str, str, str]] = []
    rec = Recorder()
    with airlock.scope(Spy("scope", log)):
        with airlock.policy(Spy("outer", log)):
            with airlock.policy(Spy("middle", log, allow=False)):
                with airlock.policy(Spy("inner", log)):
                    airlock.enqueue(rec.task("x"))
    assert log == [
        ("on_enqueue", "inner", "x"),
        ("on_enqueue", "middle", "x"),
        ("on_enqueue", "outer", "x"),
        ("on_enqueue", "scope", "x"),
        ("allows", "inner", "x"),
        ("allows", "middle", "x"),  # refused: outer and the scope policy are not asked
    ]
    assert rec.calls == []


def test_passes_local_policies_stops_at_the_first_refusal() -> None:
    log: list[tuple[str, str, str]] = []
    with airlock.scope(airlock.DropAll()):
        with airlock.policy(Spy("outer", log)), airlock.policy(Spy("inner", log, allow=False)):
            intent = airlock.enqueue(print, _name="x")
    log.clear()
    assert intent.passes_local_policies() is False
    assert log == [("allows", "inner", "x")]


# -- CoalesceDuplicates: only true duplicates ------------------------------------------


def test_coalesce_merges_only_the_same_task_object() -> None:
    ran: list[str] = []

    def make(label: str) -> Any:
        def rebuild_cache() -> None:  # same short name, different functions
            ran.append(label)

        return rebuild_cache

    a, b = make("a"), make("b")
    with airlock.scope(airlock.CoalesceDuplicates()):
        airlock.enqueue(a)
        airlock.enqueue(b)
        airlock.enqueue(a)
    assert ran == ["a", "b"]


def test_coalesce_compares_arguments_with_equality_not_repr() -> None:
    class SameRepr:
        def __init__(self, value: int) -> None:
            self.value = value

        def __repr__(self) -> str:
            return "SameRepr()"

        def __eq__(self, other: object) -> bool:
            return isinstance(other, SameRepr) and other.value == self.value

        __hash__ = None  # type: ignore[assignment]

    seen: list[int] = []

    def task(obj: SameRepr) -> None:
        seen.append(obj.value)

    with airlock.scope(airlock.CoalesceDuplicates()):
        airlock.enqueue(task, SameRepr(1))
        airlock.enqueue(task, SameRepr(2))  # same repr, not equal: both run
        airlock.enqueue(task, SameRepr(1))  # equal (and unhashable): merged
    assert seen == [1, 2]


def test_coalesce_keeps_intents_with_different_dispatch_options() -> None:
    seen: list[Any] = []
    with airlock.scope(airlock.CoalesceDuplicates(), executor=lambda i: seen.append(i.dispatch_options)):
        airlock.enqueue(print, 1, _dispatch_options={"queue": "a"})
        airlock.enqueue(print, 1, _dispatch_options={"queue": "b"})
        airlock.enqueue(print, 1, _dispatch_options={"queue": "a"})
        airlock.enqueue(print, 1)
    assert seen == [{"queue": "a"}, {"queue": "b"}, None]


# -- Intent is read-only all the way down ---------------------------------------


def test_intent_kwargs_and_dispatch_options_are_read_only() -> None:
    with airlock.scope(airlock.DropAll()):
        intent = airlock.enqueue(print, 1, sep="-", _dispatch_options={"queue": "q"})
    for mapping in (intent.kwargs, intent.dispatch_options):
        assert mapping is not None
        with pytest.raises(TypeError, match="read-only"):
            mapping["x"] = 1  # type: ignore[index]
        with pytest.raises(TypeError, match="read-only"):
            mapping.update(x=1)
        with pytest.raises(TypeError, match="read-only"):
            mapping.pop("queue", None)
        with pytest.raises(TypeError, match="read-only"):
            mapping.clear()
        with pytest.raises(TypeError, match="read-only"):
            del mapping["x"]
        with pytest.raises(TypeError, match="read-only"):
            mapping |= {"x": 1}
    assert intent.kwargs == {"sep": "-"} and intent.dispatch_options == {"queue": "q"}
    copy = intent.kwargs.copy()
    copy["x"] = 1  # a copy is an ordinary dict
    assert intent.kwargs == {"sep": "-"}


def test_caller_mappings_are_not_shared_with_the_intent() -> None:
    options = {"queue": "q"}
    with airlock.scope(airlock.DropAll()):
        intent = airlock.enqueue(print, _dispatch_options=options)
    options["queue"] = "changed"
    assert intent.dispatch_options == {"queue": "q"}


# -- dispatches_own_intents -----------------------------------------------------------


class OwnDispatch(airlock.Scope):
    dispatches_own_intents = True


def test_a_scope_that_dispatches_its_own_intents_is_final_for_them() -> None:
    log: list[tuple[str, str, str]] = []
    rec = Recorder()
    with airlock.scope(Spy("outer", log)) as outer:
        with OwnDispatch(Spy("own", log)):
            airlock.enqueue(rec.task("x"))
        # Dispatched at its own flush, judged by every enclosing policy, not captured.
        assert rec.names == ["x"] and outer.intents == []
    assert [e for e in log if e[0] == "allows"] == [("allows", "own", "x"), ("allows", "outer", "x")]


def test_an_enclosing_policy_still_refuses_what_an_own_dispatching_scope_flushes() -> None:
    rec = Recorder()
    with airlock.scope(airlock.DropAll()) as outer:
        with OwnDispatch():
            airlock.enqueue(rec.task("x"))
    assert rec.calls == [] and outer.intents == []


def test_a_shared_policy_judges_an_own_dispatching_scope_intent_once() -> None:
    log: list[tuple[str, str, str]] = []
    shared = Spy("shared", log)
    with airlock.scope(shared), OwnDispatch(shared):
        airlock.enqueue(print, _name="x")
    assert [e for e in log if e[0] == "allows"] == [("allows", "shared", "x")]


def test_nested_scopes_inside_an_own_dispatching_scope_are_captured_by_it() -> None:
    rec = Recorder()
    with airlock.scope() as outer:
        with OwnDispatch() as own:
            with airlock.scope():
                airlock.enqueue(rec.task("nested"))
            assert [i.name for i in own.captured_intents] == ["nested"]
        assert rec.names == ["nested"] and outer.intents == []
