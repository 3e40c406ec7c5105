"""SPEC §2.1: enqueue, and the errors it raises at the line that caused them."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

import airlock
from core_helpers import Recorder


def test_enqueue_buffers_and_returns_the_intent() -> None:
    rec = Recorder()
    task = rec.task("send_email")
    with airlock.scope() as s:
        intent = airlock.enqueue(task, 42, force=True)
        assert isinstance(intent, airlock.Intent)
        assert rec.calls == []  # nothing runs at enqueue
        assert s.intents == [intent]
    assert rec.calls == [("send_email", (42,), {"force": True})]


def test_enqueue_without_scope_raises_no_scope_error_naming_the_task() -> None:
    def notify_warehouse() -> None:
        pass

    with pytest.raises(airlock.NoScopeError) as info:
        airlock.enqueue(notify_warehouse)
    message = str(info.value)
    assert "without an active airlock.scope()" in message
    assert "notify_warehouse" in message
    assert isinstance(info.value, airlock.UsageError)


def test_enqueue_after_scope_ended_raises_no_scope_error() -> None:
    with airlock.scope():
        pass
    with pytest.raises(airlock.NoScopeError):
        airlock.enqueue(print)


@pytest.mark.parametrize("bad", [None, 42, "send_email", ["task"]])
def test_non_callable_task_is_a_type_error_at_enqueue(bad: Any) -> None:
    with airlock.scope() as s:
        with pytest.raises(TypeError) as info:
            airlock.enqueue(bad)
        assert repr(bad) in str(info.value)
        assert s.intents == []


def test_non_callable_task_is_a_type_error_even_without_scope() -> None:
    with pytest.raises(TypeError, match="callable"):
        airlock.enqueue(None)  # type: ignore[arg-type]


def test_underscore_options_are_not_task_kwargs() -> None:
    rec = Recorder()
    with airlock.scope():
        intent = airlock.enqueue(
            rec.task("t"), 1, _name="renamed", _origin="cron", _dispatch_options={"queue": "q"}, x=2
        )
    assert intent.name == "renamed"
    assert intent.origin == "cron"
    assert intent.dispatch_options == {"queue": "q"}
    assert rec.calls == [("t", (1,), {"x": 2})]


def test_task_kwargs_named_like_enqueue_parameters_are_passed_through() -> None:
    rec = Recorder()
    with airlock.scope():
        airlock.enqueue(rec.task("t"), task="a", args=1, kwargs=2)
    assert rec.calls == [("t", (), {"task": "a", "args": 1, "kwargs": 2})]


def test_origin_defaults_to_the_scope_origin_and_is_inherited() -> None:
    with airlock.Scope(origin="/checkout") as outer:
        a = airlock.enqueue(print)
        with airlock.scope() as inner:
            b = airlock.enqueue(print)
            c = airlock.enqueue(print, _origin="explicit")
        assert inner.origin == "/checkout"
        outer_policy_kept = outer.policy
    assert (a.origin, b.origin, c.origin) == ("/checkout", "/checkout", "explicit")
    assert isinstance(outer_policy_kept, airlock.AllowAll)


def test_executor_validate_runs_at_enqueue_and_refuses_the_intent() -> None:
    seen: list[str] = []

    class StrictExecutor:
        def __call__(self, intent: airlock.Intent) -> None:
            seen.append(f"run {intent.name}")

        def validate(self, intent: airlock.Intent) -> None:
            seen.append(f"validate {intent.name}")
            if any(not isinstance(a, int) for a in intent.args):
                raise TypeError(f"{intent.name}: argument {intent.args!r} is not serializable")

    def send() -> None:
        pass

    with airlock.Scope(executor=StrictExecutor()) as s:
        airlock.enqueue(send, 1)
        assert seen == ["validate send"]
        with pytest.raises(TypeError, match="not serializable"):
            airlock.enqueue(send, object())
        assert len(s.intents) == 1  # the refused intent was not buffered
    assert seen == ["validate send", "validate send", "run send"]


def test_enclosing_scope_executor_validate_runs_for_nested_enqueue() -> None:
    validated: list[str] = []

    class Validating:
        def __call__(self, intent: airlock.Intent) -> None:
            pass

        def validate(self, intent: airlock.Intent) -> None:
            validated.append(intent.name)

    with airlock.Scope(executor=Validating()):
        with airlock.scope():
            airlock.enqueue(print)
    assert validated == ["print"]


def test_policy_on_enqueue_raising_refuses_the_intent() -> None:
    class NoSms(airlock.Policy):
        def on_enqueue(self, intent: airlock.Intent) -> None:
            if intent.name == "send_sms":
                raise airlock.PolicyViolation("no SMS here")

    rec = Recorder()
    with airlock.scope(policy=NoSms()) as s:
        airlock.enqueue(rec.task("send_email"))
        with pytest.raises(airlock.PolicyViolation, match="no SMS"):
            airlock.enqueue(rec.task("send_sms"))
        assert [i.name for i in s.intents] == ["send_email"]
    assert rec.names == ["send_email"]


class EnqueuesIn(airlock.Policy):
    """A misbehaving policy that tries to enqueue from its callbacks."""

    def __init__(self, where: str) -> None:
        self.where = where

    def on_enqueue(self, intent: airlock.Intent) -> None:
        if self.where == "on_enqueue":
            airlock.enqueue(print, "sneaky")

    def allows(self, intent: airlock.Intent) -> bool:
        if self.where == "allows":
            airlock.enqueue(print, "sneaky")
        return True


def test_enqueue_from_on_enqueue_is_a_policy_enqueue_error() -> None:
    rec = Recorder()
    with airlock.scope(policy=EnqueuesIn("on_enqueue")) as s:
        with pytest.raises(airlock.PolicyEnqueueError, match="policy callback"):
            airlock.enqueue(rec.task("t"))
        assert s.intents == []
        # The guard is lifted afterwards: the scope still works.
        assert airlock.get_current_scope() is s
    assert rec.calls == []


def test_enqueue_from_local_policy_on_enqueue_is_a_policy_enqueue_error() -> None:
    with airlock.scope() as s, airlock.policy(EnqueuesIn("on_enqueue")):
        with pytest.raises(airlock.PolicyEnqueueError, match="policy callback"):
            airlock.enqueue(print)
    assert s.intents == []


def test_enqueue_from_allows_is_a_policy_enqueue_error_at_flush() -> None:
    rec = Recorder()
    with pytest.raises(airlock.PolicyEnqueueError, match="policy callback"):
        with airlock.scope(policy=EnqueuesIn("allows")):
            airlock.enqueue(rec.task("t"))
    assert rec.calls == []
    assert airlock.get_current_scope() is None


def test_enqueue_from_local_policy_allows_is_a_policy_enqueue_error() -> None:
    with pytest.raises(airlock.PolicyEnqueueError):
        with airlock.scope():
            with airlock.policy(EnqueuesIn("allows")):
                airlock.enqueue(print)


def test_policy_enqueue_error_is_a_usage_error() -> None:
    assert issubclass(airlock.PolicyEnqueueError, airlock.UsageError)


def test_opening_a_scope_inside_a_policy_callback_is_refused() -> None:
    class OpensScope(airlock.Policy):
        def on_enqueue(self, intent: airlock.Intent) -> None:
            with airlock.scope():
                pass

    with airlock.scope(policy=OpensScope()) as s:
        with pytest.raises(airlock.UsageError, match="policy callback"):
            airlock.enqueue(print)
        assert airlock.get_current_scope() is s


def test_get_current_scope_inside_a_policy_callback_is_the_judging_scope() -> None:
    seen: list[Any] = []

    class Peek(airlock.Policy):
        def on_enqueue(self, intent: airlock.Intent) -> None:
            seen.append(airlock.get_current_scope())

    with airlock.scope(policy=Peek()) as outer:
        with airlock.scope() as inner:
            airlock.enqueue(print)
    assert seen == [inner]
    assert outer is not inner


def test_nested_scope_with_its_own_origin_keeps_it() -> None:
    with airlock.Scope(origin="/checkout"):
        with airlock.Scope(origin="nightly-job") as inner:
            intent = airlock.enqueue(print)
    assert inner.origin == "nightly-job" and intent.origin == "nightly-job"


# -- the inline path: a scope whose checks are all the library's own -------------------


def _own_check(seen: list[tuple[str, object]]) -> Any:
    """A check marked as the library's own (it never enqueues): enqueue may run it inline."""

    def check(intent: airlock.Intent) -> None:
        seen.append((intent.name, airlock._context.current.get()))

    check.airlock_never_enqueues = True  # type: ignore[attr-defined]
    return check


def _checking(
    seen: list[tuple[str, object]], base: type[airlock.Scope] = airlock.Scope
) -> type[airlock.Scope]:
    class Checking(base):  # type: ignore[valid-type,misc]
        def enqueue_checks(self) -> Any:
            return (*super().enqueue_checks(), _own_check(seen))

    return Checking


def test_the_librarys_own_checks_run_inline_and_the_intent_is_buffered() -> None:
    seen: list[tuple[str, object]] = []
    rec = Recorder()
    with _checking(seen)() as s:
        a = airlock.enqueue(rec.task("a"))
        b = airlock.enqueue(rec.task("b"))
        assert s._inline  # the inline path was taken
        assert s.intents == [a, b]
    assert seen == [("a", s), ("b", s)]  # no judging guard around them
    assert rec.names == ["a", "b"]


def test_an_overridden_add_still_sees_every_intent_with_own_checks() -> None:
    seen: list[tuple[str, object]] = []
    added: list[str] = []

    class Adding(_checking(seen)):  # type: ignore[misc]
        def _add(self, intent: airlock.Intent) -> None:
            added.append(intent.name)
            super()._add(intent)

    with Adding() as s:
        airlock.enqueue(print, _name="a")
        assert not s._inline
    assert added == ["a"] and [name for name, _ in seen] == ["a"]


def test_an_overridden_judge_still_judges_with_own_checks() -> None:
    seen: list[tuple[str, object]] = []
    judged: list[str] = []

    class Judging(_checking(seen)):  # type: ignore[misc]
        def _judge(self, intent: airlock.Intent, checks: Any) -> None:
            judged.append(intent.name)
            super()._judge(intent, checks)

    with Judging() as s:
        airlock.enqueue(print, _name="a")
        assert not s._inline
    assert judged == ["a"] and [name for name, _ in seen] == ["a"]


@pytest.mark.parametrize(
    ("hook", "with_checks"),
    [("_add", True), ("_judge", True), ("_judge_and_add", True), ("_add", False)],
)
def test_a_hook_patched_on_one_scope_instance_sees_every_intent(hook: str, with_checks: bool) -> None:
    # mock.patch.object(scope, ...) sets the hook on the instance: the inline paths must see it.
    # (_add is the hook every intent passes through; the judging ones run when there are checks.)
    seen: list[tuple[str, object]] = []
    scope = _checking(seen)() if with_checks else airlock.Scope()
    rec = Recorder()
    with mock.patch.object(scope, hook, wraps=getattr(scope, hook)) as spy, scope:
        airlock.enqueue(rec.task("a"))
        airlock.enqueue(rec.task("b"))
        assert [c.args[0].name for c in spy.call_args_list] == ["a", "b"]
        assert [i.name for i in scope.intents] == ["a", "b"]
    assert rec.names == ["a", "b"]


def test_a_check_not_marked_as_the_librarys_runs_under_the_judging_guard() -> None:
    seen: list[object] = []

    class Checking(airlock.Scope):
        def enqueue_checks(self) -> Any:
            return (lambda intent: seen.append(airlock._context.current.get()),)

    with Checking() as s:
        airlock.enqueue(print)
        assert not s._inline
    assert type(seen[0]) is airlock._context._Judging


def test_a_local_policy_is_asked_even_when_the_scope_runs_its_checks_inline() -> None:
    seen: list[tuple[str, object]] = []
    asked: list[str] = []

    class Asking(airlock.Policy):
        def on_enqueue(self, intent: airlock.Intent) -> None:
            asked.append(intent.name)

        def allows(self, intent: airlock.Intent) -> bool:
            return intent.name != "refused"

    rec = Recorder()
    with _checking(seen)() as s:
        airlock.enqueue(rec.task("plain"))
        assert s._inline
        with airlock.policy(Asking()):
            airlock.enqueue(rec.task("asked"))
            airlock.enqueue(rec.task("refused"))
    assert asked == ["asked", "refused"]
    assert [name for name, _ in seen] == ["plain", "asked", "refused"]
    assert rec.names == ["plain", "asked"]


def test_a_scope_policy_that_asks_on_enqueue_keeps_the_guard_around_own_checks() -> None:
    seen: list[tuple[str, object]] = []
    asked: list[str] = []

    class Asking(airlock.Policy):
        def on_enqueue(self, intent: airlock.Intent) -> None:
            asked.append(intent.name)

    with _checking(seen)(Asking()) as s:
        airlock.enqueue(print, _name="a")
        assert not s._inline
    assert asked == ["a"]
    assert type(seen[0][1]) is airlock._context._Judging


def test_a_condition_added_by_an_inline_check_still_filters_at_flush() -> None:
    class Voiding(airlock.Scope):
        def enqueue_checks(self) -> Any:
            def void_b(intent: airlock.Intent) -> None:
                if intent.name == "b":
                    intent.add_condition(lambda: False)

            void_b.airlock_never_enqueues = True  # type: ignore[attr-defined]
            return (void_b,)

    rec = Recorder()
    with Voiding() as s:
        airlock.enqueue(rec.task("a"))
        airlock.enqueue(rec.task("b"))
        assert s._inline
    assert rec.names == ["a"]


def test_a_root_scope_dedupes_equal_checks_of_its_own() -> None:
    seen: list[tuple[str, object]] = []
    check = _own_check(seen)

    class Twice(airlock.Scope):
        def enqueue_checks(self) -> Any:
            return (check, check)

    with Twice():
        airlock.enqueue(print, _name="a")
    assert [name for name, _ in seen] == ["a"]
