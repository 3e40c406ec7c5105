"""SPEC §2.4: the policy protocol and the built-in policies."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

import airlock
from core_helpers import Recorder


def test_reprs_are_readable() -> None:
    assert repr(airlock.AllowAll()) == "AllowAll()"
    assert repr(airlock.DropAll()) == "DropAll()"
    assert repr(airlock.AssertNoEffects()) == "AssertNoEffects()"
    assert repr(airlock.BlockTasks({"b", "a"})) == "BlockTasks(['a', 'b'])"
    assert (
        repr(airlock.BlockTasks(["a"], raise_on_enqueue=True)) == "BlockTasks(['a'], raise_on_enqueue=True)"
    )
    assert repr(airlock.LogOnFlush()) == "LogOnFlush(logger='airlock')"
    assert repr(airlock.LogOnFlush("audit")) == "LogOnFlush(logger='audit')"
    assert repr(airlock.CoalesceDuplicates()) == "CoalesceDuplicates()"
    assert repr(airlock.CoalesceDuplicates(names=["y", "x"])) == "CoalesceDuplicates(names=['x', 'y'])"

    def by_name(intent: airlock.Intent) -> str:
        return intent.name

    assert repr(airlock.CoalesceDuplicates(by_name)) == "CoalesceDuplicates(key='by_name')"

    class Mine(airlock.Policy):
        pass

    assert repr(Mine()) == "Mine()"


@pytest.mark.parametrize(
    "policy",
    [
        airlock.AllowAll(),
        airlock.DropAll(),
        airlock.AssertNoEffects(),
        airlock.BlockTasks(set()),
        airlock.LogOnFlush(),
        airlock.CoalesceDuplicates(),
    ],
    ids=repr,
)
def test_builtins_satisfy_the_protocol(policy: Any) -> None:
    assert isinstance(policy, airlock.Policy)
    assert isinstance(policy, airlock.PolicyProtocol)


def test_allow_all() -> None:
    rec = Recorder()
    with airlock.scope(airlock.AllowAll()):
        airlock.enqueue(rec.task("a"))
        airlock.enqueue(rec.task("b"))
    assert rec.names == ["a", "b"]


def test_drop_all_keeps_intents_inspectable() -> None:
    rec = Recorder()
    with airlock.scope(airlock.DropAll()) as s:
        airlock.enqueue(rec.task("a"), 1)
        airlock.enqueue(rec.task("b"), 2)
        assert [(i.name, i.args) for i in s.intents] == [("a", (1,)), ("b", (2,))]
    assert rec.calls == []
    assert len(s.intents) == 2  # still there after the scope ended


def test_assert_no_effects_names_the_task() -> None:
    def charge_card() -> None:
        pass

    with airlock.scope(airlock.AssertNoEffects()) as s:
        with pytest.raises(airlock.PolicyViolation, match="charge_card"):
            airlock.enqueue(charge_card)
        assert s.intents == []
    assert issubclass(airlock.PolicyViolation, airlock.AirlockError)


def test_assert_no_effects_allows_nothing_at_flush() -> None:
    assert airlock.AssertNoEffects().allows(airlock.Intent(print)) is False


def test_block_tasks_drops_by_name_and_keeps_them_buffered() -> None:
    rec = Recorder()
    with airlock.scope(airlock.BlockTasks({"send_confirmation_email"})) as s:
        airlock.enqueue(rec.task("notify_warehouse"))
        airlock.enqueue(rec.task("send_confirmation_email"))
        assert len(s.intents) == 2  # blocked intents remain visible in the scope
    assert rec.names == ["notify_warehouse"]


def test_block_tasks_matches_the_intent_name_including_explicit_names() -> None:
    rec = Recorder()
    with airlock.scope(airlock.BlockTasks(["blocked"])):
        airlock.enqueue(rec.task("t"), _name="blocked")
        airlock.enqueue(rec.task("blocked"), _name="fine")
    assert rec.calls == [("blocked", (), {})]


def test_block_tasks_raise_on_enqueue() -> None:
    rec = Recorder()
    with airlock.scope(airlock.BlockTasks({"x"}, raise_on_enqueue=True)) as s:
        with pytest.raises(airlock.PolicyViolation, match="x"):
            airlock.enqueue(rec.task("x"))
        airlock.enqueue(rec.task("y"))
        assert [i.name for i in s.intents] == ["y"]
    assert rec.names == ["y"]


def test_block_tasks_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError, match="collection of task names"):
        airlock.BlockTasks("send_email")


def test_log_on_flush_logs_each_intent_and_allows_all(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    caplog.set_level(logging.INFO, logger="airlock")
    with airlock.scope(airlock.LogOnFlush()):
        airlock.enqueue(rec.task("a"), 1)
        airlock.enqueue(rec.task("b"), x=2)
        assert not [r for r in caplog.records if r.levelno == logging.INFO]  # only at flush
    assert rec.names == ["a", "b"]
    infos = [r.getMessage() for r in caplog.records if r.name == "airlock" and r.levelno == logging.INFO]
    assert len(infos) == 2
    assert "a(1)" in infos[0] and "b(x=2)" in infos[1]


def test_log_on_flush_custom_logger(caplog: pytest.LogCaptureFixture) -> None:
    audit = logging.getLogger("test.audit")
    caplog.set_level(logging.INFO, logger="test.audit")
    with airlock.scope(airlock.LogOnFlush(audit)):
        airlock.enqueue(print, _name="p")
        airlock.enqueue(len, "x")
    assert [r.name for r in caplog.records if r.levelno == logging.INFO] == ["test.audit", "test.audit"]
    assert airlock.LogOnFlush(audit).logger is audit
    assert airlock.LogOnFlush("test.audit").logger is audit


def test_custom_policy_subclass_overriding_only_allows() -> None:
    class EvenOnly(airlock.Policy):
        def allows(self, intent: airlock.Intent) -> bool:
            return intent.args[0] % 2 == 0

    rec = Recorder()
    with airlock.scope(EvenOnly()):
        for n in range(5):
            airlock.enqueue(rec.task("t"), n)
    assert rec.first_args == [0, 2, 4]


def test_policy_select_override_sees_the_whole_flush() -> None:
    class FirstTwo(airlock.Policy):
        def select(self, intents: list[airlock.Intent]) -> list[airlock.Intent]:
            return intents[:2]

    rec = Recorder()
    with airlock.scope(FirstTwo()):
        for n in range(5):
            airlock.enqueue(rec.task("t"), n)
    assert rec.first_args == [0, 1]


def test_select_returning_a_non_list_is_a_type_error() -> None:
    class Bad(airlock.Policy):
        def select(self, intents: list[airlock.Intent]) -> Any:
            return tuple(intents)

    with pytest.raises(TypeError, match="select"):
        with airlock.scope(Bad()):
            airlock.enqueue(print)


def test_select_returning_foreign_intents_is_an_error() -> None:
    stranger = airlock.Intent(print)

    class Bad(airlock.Policy):
        def select(self, intents: list[airlock.Intent]) -> list[airlock.Intent]:
            return [*intents, stranger]

    rec = Recorder()
    with pytest.raises(airlock.UsageError, match="not given"):
        with airlock.scope(Bad()):
            airlock.enqueue(rec.task("t"))
    assert rec.calls == []


def test_select_cannot_reorder() -> None:
    class Reverse(airlock.Policy):
        def select(self, intents: list[airlock.Intent]) -> list[airlock.Intent]:
            return intents[::-1]

    rec = Recorder()
    with airlock.scope(Reverse()):
        for n in range(3):
            airlock.enqueue(rec.task("t"), n)
    assert rec.first_args == [0, 1, 2]


def test_local_policy_rejects_non_policies() -> None:
    with pytest.raises(TypeError, match="policy"):
        airlock.policy(object())  # type: ignore[arg-type]


# -- CoalesceDuplicates --------------------------------------------------------


def test_coalesce_keeps_the_first_of_each_duplicate() -> None:
    rec = Recorder()
    rebuild, email = rec.task("rebuild_cache"), rec.task("send_email")
    with airlock.scope(airlock.CoalesceDuplicates()):
        for order_id in range(1000):
            airlock.enqueue(rebuild)
            airlock.enqueue(email, order_id % 3)
        airlock.enqueue(email, 0, urgent=True)  # different kwargs: not a duplicate
    assert rec.calls == [
        ("rebuild_cache", (), {}),
        ("send_email", (0,), {}),
        ("send_email", (1,), {}),
        ("send_email", (2,), {}),
        ("send_email", (0,), {"urgent": True}),
    ]


def test_coalesce_handles_unhashable_arguments() -> None:
    rec = Recorder()
    t = rec.task("t")
    with airlock.scope(airlock.CoalesceDuplicates()):
        airlock.enqueue(t, [1, 2], opts={"a": [1]})
        airlock.enqueue(t, [1, 2], opts={"a": [1]})
        airlock.enqueue(t, [1, 3], opts={"a": [1]})
    assert rec.first_args == [[1, 2], [1, 3]]


def test_coalesce_custom_key_and_names() -> None:
    rec = Recorder()
    with airlock.scope(airlock.CoalesceDuplicates(lambda i: i.name)):
        airlock.enqueue(rec.task("a"), 1)
        airlock.enqueue(rec.task("a"), 2)
        airlock.enqueue(rec.task("b"), 3)
    assert rec.calls == [("a", (1,), {}), ("b", (3,), {})]

    rec.calls.clear()
    a, b = rec.task("a"), rec.task("b")
    with airlock.scope(airlock.CoalesceDuplicates(names={"a"})):
        for _ in range(3):
            airlock.enqueue(a)
            airlock.enqueue(b)
    assert rec.names == ["a", "b", "b", "b"]


def test_coalesce_names_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError, match="string"):
        airlock.CoalesceDuplicates(names="a")


def test_coalesce_is_per_flush_not_forever() -> None:
    rec = Recorder()
    policy = airlock.CoalesceDuplicates()
    t = rec.task("t")
    for _ in range(3):
        with airlock.scope(policy):
            airlock.enqueue(t)
            airlock.enqueue(t)
    assert rec.names == ["t", "t", "t"]


def test_coalesce_across_captured_intents() -> None:
    rec = Recorder()
    airlock.configure(policy=airlock.CoalesceDuplicates())
    t = rec.task("t")
    with airlock.scope():
        airlock.enqueue(t)
        for _ in range(3):
            with airlock.scope():
                airlock.enqueue(t)
                airlock.enqueue(t)
    assert rec.names == ["t"]


def test_coalesce_keeps_an_allowed_intent_when_an_earlier_duplicate_is_dropped_locally() -> None:
    # Local policies judge first; coalescing then picks among what may go.
    rec = Recorder()
    with airlock.scope(airlock.CoalesceDuplicates()):
        with airlock.policy(airlock.DropAll()):
            airlock.enqueue(rec.task("t"))
        airlock.enqueue(rec.task("t"))
    assert rec.names == ["t"]


def test_coalesce_configured_globally_under_many_concurrent_threads() -> None:
    airlock.configure(policy=airlock.CoalesceDuplicates())
    n_threads = 64
    barrier = threading.Barrier(n_threads)
    results: dict[int, list[tuple[str, tuple[Any, ...]]]] = {}
    errors: list[BaseException] = []

    def rebuild_cache(*args: Any) -> None:
        pass

    def unit(tid: int) -> None:
        mine: list[tuple[str, tuple[Any, ...]]] = []
        try:
            with airlock.scope(executor=lambda i: mine.append((i.name, i.args))):
                for n in range(20):
                    airlock.enqueue(rebuild_cache)  # identical in every thread
                    airlock.enqueue(rebuild_cache, tid)
                    if n == 10:
                        barrier.wait(10)  # every thread is mid-scope
                with airlock.scope():
                    airlock.enqueue(rebuild_cache, tid)
            results[tid] = mine
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=unit, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert results == {t: [("rebuild_cache", ()), ("rebuild_cache", (t,))] for t in range(n_threads)}
