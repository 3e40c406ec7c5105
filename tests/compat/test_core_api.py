"""SPEC §5.3, the core: code written from airlock-py 0.1.0a2's documentation runs unchanged.

Each test is written the way a user of the original wrote it, from its API
reference and its "custom scopes / policies / executors" guides.
"""

from __future__ import annotations

from typing import Any

import pytest

import airlock
from airlock import Intent, PolicyViolation, Scope


def send_email(order_id: int) -> None:
    sent.append(order_id)


sent: list[int] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    sent.clear()


# -- the documented protocols -------------------------------------------------------


def test_executor_protocol_covers_plain_functions_and_the_default() -> None:
    def my_executor(intent: Intent) -> None:
        intent.task(*intent.args, **intent.kwargs)

    assert isinstance(my_executor, airlock.Executor)
    assert isinstance(airlock._execute, airlock.Executor)
    with airlock.scope(executor=my_executor):
        airlock.enqueue(send_email, 1)
    assert sent == [1]


def test_a_duck_typed_policy_is_an_airlock_policy() -> None:
    class OnlyEmails:
        def on_enqueue(self, intent: Intent) -> None:
            pass

        def allows(self, intent: Intent) -> bool:
            return intent.name == "send_email"

    policy = OnlyEmails()
    assert isinstance(policy, airlock.Policy)
    with airlock.scope(policy=policy):
        airlock.enqueue(send_email, 1)
        airlock.enqueue(print, "not an email")
    assert sent == [1]


def test_subclassing_policy_gives_no_op_defaults() -> None:
    class NoEmails(airlock.Policy):
        def allows(self, intent: Intent) -> bool:
            return intent.name != "send_email"

    with airlock.scope(policy=NoEmails()):
        airlock.enqueue(send_email, 1)  # on_enqueue: the inherited no-op
    assert sent == []


def test_execute_runs_an_intent_in_process_in_a_custom_scope() -> None:
    # The original's custom-scope example: dispatch by hand with airlock._execute.
    class AuditedScope(Scope):
        def _dispatch_all(self, intents: list[Intent]) -> None:
            for intent in intents:
                audit.append(intent.name)
                airlock._execute(intent)

    audit: list[str] = []
    with AuditedScope():
        airlock.enqueue(send_email, 7)
    assert audit == ["send_email"] and sent == [7]


# -- constructing scopes --------------------------------------------------------------


def test_scope_takes_policy_and_executor_positionally() -> None:
    ran: list[str] = []
    s = Scope(airlock.AllowAll(), lambda intent: ran.append(intent.name))
    with s:
        airlock.enqueue(send_email, 1)
    assert ran == ["send_email"] and sent == []


class KeywordScope(Scope):
    """The shape of the original's own scopes: keyword arguments only."""

    built: list[dict[str, Any]] = []

    def __init__(self, **kwargs: Any) -> None:
        KeywordScope.built.append(dict(kwargs))
        super().__init__(**kwargs)


def test_a_keyword_only_scope_class_works_with_scope_and_scoped() -> None:
    KeywordScope.built.clear()
    airlock.configure(scope_cls=KeywordScope)
    with airlock.scope() as s:
        airlock.enqueue(send_email, 1)
    assert type(s) is KeywordScope

    @airlock.scoped()
    def place_order() -> None:
        airlock.enqueue(send_email, 2)

    @airlock.scoped
    def cancel_order() -> None:
        airlock.enqueue(send_email, 3)

    place_order()
    cancel_order()
    with airlock.scope(policy=airlock.DropAll()):
        airlock.enqueue(send_email, 4)
    assert sent == [1, 2, 3]
    # Nothing configured but the class: nothing passed but what was given.
    assert KeywordScope.built[:3] == [{}, {}, {}]
    assert set(KeywordScope.built[3]) == {"policy"}


def test_configured_policy_and_executor_reach_a_keyword_only_scope_by_keyword() -> None:
    KeywordScope.built.clear()
    ran: list[str] = []

    def executor(intent: Intent) -> None:
        ran.append(intent.name)

    policy = airlock.AllowAll()
    airlock.configure(scope_cls=KeywordScope, policy=policy, executor=executor)
    with airlock.scope():
        airlock.enqueue(send_email, 1)
    assert KeywordScope.built == [{"policy": policy, "executor": executor}]
    assert ran == ["send_email"]


def test_a_scope_whose_init_takes_only_policy_and_executor_gets_an_origin_anyway() -> None:
    class Narrow(Scope):
        def __init__(self, policy: Any = None, executor: Any = None) -> None:
            super().__init__(policy=policy, executor=executor)

    airlock.configure(scope_cls=Narrow)
    # What request/task integrations do: build the configured class for a unit of work.
    from airlock._scope import build_scope

    s = build_scope(origin="POST /orders")
    assert type(s) is Narrow and s.origin == "POST /orders"
    with s:
        intent = airlock.enqueue(send_email, 1)
    assert intent.origin == "POST /orders" and sent == [1]


# -- the _add hook ----------------------------------------------------------------------


def test_add_override_sees_every_enqueued_intent() -> None:
    class CountingScope(Scope):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.count = 0

        def _add(self, intent: Intent) -> None:
            self.count += 1
            super()._add(intent)

    with CountingScope() as s:
        airlock.enqueue(send_email, 1)
        airlock.enqueue(send_email, 2)
        assert s.count == 2 and len(s.intents) == 2
    assert sent == [1, 2]


def test_add_override_can_redirect_intents() -> None:
    class OnlyFirst(Scope):
        def _add(self, intent: Intent) -> None:
            if not self.intents:
                super()._add(intent)

    with OnlyFirst():
        airlock.enqueue(send_email, 1)
        airlock.enqueue(send_email, 2)
    assert sent == [1]


# -- lifecycle as documented ------------------------------------------------------------


def test_is_active_only_while_innermost_in_this_context() -> None:
    with airlock.scope() as outer:
        assert outer.is_active
        with airlock.scope() as inner:
            assert inner.is_active and not outer.is_active
        assert outer.is_active and not inner.is_active
    assert not outer.is_active


def test_flush_of_a_scope_filled_imperatively_without_enter() -> None:
    s = Scope()
    s._add(Intent(send_email, (1,)))
    s._add(Intent(send_email, (2,)))
    assert [i.args for i in s.flush()] == [(1,), (2,)]
    assert s.is_flushed and sent == [1, 2]


def test_discard_of_a_scope_filled_imperatively_without_enter() -> None:
    s = Scope()
    s._add(Intent(send_email, (1,)))
    assert [i.args for i in s.discard()] == [(1,)]
    assert s.is_discarded and sent == []


def test_a_scope_whose_exit_flushes_is_not_flushed_twice_by_with() -> None:
    class EagerScope(Scope):
        def exit(self) -> None:
            super().exit()
            self.flush()

    with EagerScope() as s:
        airlock.enqueue(send_email, 1)
    assert s.is_flushed and sent == [1]


def test_a_scope_whose_exit_discards_is_not_flushed_by_with() -> None:
    class DryRunScope(Scope):
        def exit(self) -> None:
            super().exit()
            self.discard()

    with DryRunScope() as s:
        airlock.enqueue(send_email, 1)
    assert s.is_discarded and sent == []


# -- configuration ----------------------------------------------------------------------


def test_get_configuration_reports_none_for_what_was_never_configured() -> None:
    assert airlock.get_configuration() == {
        "scope_cls": None,
        "policy": None,
        "executor": None,
        "scope_kwargs": None,
    }
    airlock.configure(policy=airlock.DropAll())
    assert isinstance(airlock.get_configuration()["policy"], airlock.DropAll)
    airlock.reset_configuration()
    assert airlock.get_configuration()["policy"] is None


# -- error texts users match on -------------------------------------------------------------


def test_assert_no_effects_says_unexpected_side_effect() -> None:
    with airlock.scope(policy=airlock.AssertNoEffects()):
        with pytest.raises(PolicyViolation, match="Unexpected side effect"):
            airlock.enqueue(send_email, 1)


def test_entering_an_active_scope_says_already_active() -> None:
    with airlock.scope() as s:
        with pytest.raises(airlock.ScopeStateError, match="already active"):
            s.enter()


def test_flushing_or_discarding_an_active_scope_says_still_active() -> None:
    with airlock.scope() as s:
        with pytest.raises(airlock.ScopeStateError, match=r"Cannot flush .* while scope is still active"):
            s.flush()
        with pytest.raises(airlock.ScopeStateError, match=r"Cannot discard .* while scope is still active"):
            s.discard()


def test_async_with_does_not_flush_again_a_scope_whose_exit_did() -> None:
    import asyncio

    class EagerScope(Scope):
        def exit(self) -> None:
            super().exit()
            self.flush()

    async def main() -> Scope:
        async with EagerScope() as s:
            airlock.enqueue(send_email, 1)
        return s

    assert asyncio.run(main()).is_flushed and sent == [1]
