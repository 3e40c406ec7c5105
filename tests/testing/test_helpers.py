"""airlock.testing: capture(), assert_enqueued(), assert_not_enqueued()."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import ANY

import pytest

import airlock
from airlock.testing import (
    CapturedIntents,
    assert_enqueued,
    assert_not_enqueued,
    capture,
    describe_intents,
    find_intents,
)

ran: list[tuple[str, tuple[Any, ...]]] = []


def send_email(*args: Any, **kwargs: Any) -> None:
    ran.append(("send_email", args))


def notify_warehouse(*args: Any, **kwargs: Any) -> None:
    ran.append(("notify_warehouse", args))


@pytest.fixture(autouse=True)
def _clear() -> None:
    ran.clear()


def test_capture_collects_and_dispatches_nothing() -> None:
    with capture() as intents:
        airlock.enqueue(send_email, 1, force=True)
        assert len(intents) == 1  # live while the block runs
        airlock.enqueue(notify_warehouse, 2)
        assert intents.names == ["send_email", "notify_warehouse"]
    assert ran == []
    assert [(i.name, i.args, i.kwargs) for i in intents] == [
        ("send_email", (1,), {"force": True}),
        ("notify_warehouse", (2,), {}),
    ]
    assert intents[0].task is send_email
    assert intents[-1:] == [intents[1]]
    assert isinstance(intents, CapturedIntents)
    assert intents.scope.is_flushed


def test_capture_sees_what_nested_scopes_flush_but_not_what_they_discard() -> None:
    with capture() as intents:
        with airlock.scope():
            airlock.enqueue(send_email, "kept")
        with pytest.raises(RuntimeError), airlock.scope():
            airlock.enqueue(send_email, "lost")
            raise RuntimeError("boom")
        with airlock.scope(policy=airlock.DropAll()):
            airlock.enqueue(send_email, "dropped-inside")
    # Policies judge when an intent is finally dispatched (SPEC §5.2), so the
    # inner DropAll's intent is captured; it would be dropped at dispatch.
    assert [i.args for i in intents] == [("kept",), ("dropped-inside",)]
    assert ran == []


def test_capture_keeps_its_intents_after_an_exception() -> None:
    with pytest.raises(KeyError), capture() as intents:
        airlock.enqueue(send_email, 1)
        raise KeyError("x")
    assert intents.names == ["send_email"]
    assert intents.scope.is_discarded


def test_capture_accepts_a_policy_and_scope_kwargs() -> None:
    with capture(policy=airlock.AllowAll(), origin="test:origin") as intents:
        airlock.enqueue(send_email, 7)
    assert ran == [("send_email", (7,))]
    assert intents[0].origin == "test:origin"


def test_capture_under_an_asserting_policy_raises_at_enqueue() -> None:
    with capture(policy=airlock.AssertNoEffects()):
        with pytest.raises(airlock.PolicyViolation, match="send_email"):
            airlock.enqueue(send_email, 1)


def test_async_capture_accepts_coroutine_tasks() -> None:
    async def deliver(n: int) -> None:
        ran.append(("deliver", (n,)))

    async def main() -> CapturedIntents:
        async with capture() as intents:
            airlock.enqueue(deliver, 3)
        return intents

    intents = asyncio.run(main())
    assert intents.names == ["deliver"]
    assert ran == []


def test_assert_enqueued_matches_task_object_name_and_arguments() -> None:
    with capture() as intents:
        airlock.enqueue(send_email, 42, force=True)
        airlock.enqueue(send_email, 43)
    assert assert_enqueued(intents, send_email) == list(intents)
    assert_enqueued(intents, "send_email", 42, force=True)
    assert_enqueued(intents, send_email, 43)
    assert_enqueued(intents, send_email, ANY, force=ANY)
    assert_enqueued(intents.scope, send_email, 43, _count=1)
    assert_enqueued(list(intents), send_email, _count=2)


def test_assert_enqueued_failure_is_a_diff_of_what_was_there() -> None:
    with capture(origin="POST /checkout") as intents:
        airlock.enqueue(send_email, 41, force=True)
        airlock.enqueue(notify_warehouse, 42)
    with pytest.raises(AssertionError) as info:
        assert_enqueued(intents, send_email, 42, force=True)
    assert str(info.value) == (
        "send_email(42, force=True) was not enqueued; 2 intent(s) were:\n"
        "- send_email(42, force=True)    (expected)\n"
        "+ send_email(41, force=True)    (#1, same task, different arguments, origin: POST /checkout)\n"
        "+ notify_warehouse(42)    (#2, other task, origin: POST /checkout)"
    )


def test_assert_enqueued_failure_when_nothing_was_enqueued() -> None:
    with capture() as intents:
        pass
    with pytest.raises(
        AssertionError,
        match=r"(?s)send_email\(\.\.\.\) was not enqueued; 0 intent.*"
        r"\+ \(nothing was enqueued\)",
    ):
        assert_enqueued(intents, send_email)


def test_assert_enqueued_count_mismatch_lists_everything() -> None:
    with capture() as intents:
        airlock.enqueue(send_email, 1)
        airlock.enqueue(send_email, 1)
    with pytest.raises(AssertionError) as info:
        assert_enqueued(intents, send_email, 1, _count=1)
    assert "send_email(1) was enqueued 2 time(s), expected 1" in str(info.value)
    assert "#2 send_email(1)" in str(info.value)


def test_assert_not_enqueued() -> None:
    with capture() as intents:
        airlock.enqueue(send_email, 1)
    assert_not_enqueued(intents, notify_warehouse)
    assert_not_enqueued(intents, send_email, 2)
    with pytest.raises(AssertionError) as info:
        assert_not_enqueued(intents, "send_email")
    assert (
        str(info.value)
        == "send_email was enqueued 1 time(s) (#1 send_email(1)); all intents:\n  #1 send_email(1)"
    )


def test_find_intents_and_describe() -> None:
    with capture() as intents:
        airlock.enqueue(send_email, 1)
        airlock.enqueue(notify_warehouse, 1, _origin="cli")
    assert [i.name for i in find_intents(intents, notify_warehouse)] == ["notify_warehouse"]
    assert describe_intents(intents) == "  #1 send_email(1)\n  #2 notify_warehouse(1)  [origin: cli]"
    assert describe_intents([]) == "  (nothing was enqueued)"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: assert_enqueued(42, send_email), TypeError, "needs a Scope, the result of capture()"),  # type: ignore[arg-type]
        (lambda: assert_enqueued("send_email", send_email), TypeError, "got 'send_email'"),
        (lambda: assert_enqueued([1], send_email), TypeError, "expected airlock.Intent"),  # type: ignore[list-item]
        (lambda: assert_enqueued([], 42), TypeError, "needs a task or an intent name, got 42"),  # type: ignore[arg-type]
        (lambda: assert_not_enqueued([], 42), TypeError, "needs a task or an intent name"),  # type: ignore[arg-type]
        (lambda: find_intents([], None), TypeError, "needs a task or an intent name"),  # type: ignore[arg-type]
        (lambda: assert_enqueued([], send_email, _count=0), ValueError, "positive int"),
    ],
)
def test_misuse_is_named(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()
