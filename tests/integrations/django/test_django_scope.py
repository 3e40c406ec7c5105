"""DjangoScope against a real database: dispatch waits for the commit, and
intents made in a block that rolls back never dispatch."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

import pytest
from asgiref.sync import async_to_sync
from django.db import connections, transaction

import airlock
from airlock import DispatchError, Scope, UsageError
from airlock.integrations.django import DjangoScope
from integrations.django.testapp.effects import arecord, labels, record
from integrations.django.testapp.models import Order

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "other"])


class Undo(Exception):
    pass


def test_the_configured_scope_is_a_django_scope(ran: list[tuple[str, bool]]) -> None:
    seen: list[Scope | None] = []

    @airlock.scoped()
    def command() -> None:
        seen.append(airlock.get_current_scope())

    command()
    with airlock.scope() as s:
        pass
    assert type(s) is DjangoScope and s.using == "default"
    assert type(seen[0]) is DjangoScope


def test_outside_any_transaction_it_dispatches_at_scope_exit(ran: list[tuple[str, bool]]) -> None:
    with airlock.scope():
        Order.objects.create(label="a")
        airlock.enqueue(record, "a")
        assert ran == []
    assert ran == [("a", False)]


def test_scope_inside_atomic_dispatches_after_the_commit(ran: list[tuple[str, bool]]) -> None:
    with transaction.atomic():
        with airlock.scope() as s:
            Order.objects.create(label="a")
            airlock.enqueue(record, "a")
        assert s.is_flushed
        assert ran == []  # flushed, but the transaction is still open
    assert ran == [("a", False)]
    assert Order.objects.filter(label="a").exists()


def test_scope_inside_atomic_that_rolls_back_dispatches_nothing(ran: list[tuple[str, bool]]) -> None:
    with pytest.raises(Undo):
        with transaction.atomic():
            with airlock.scope() as s:
                Order.objects.create(label="a")
                airlock.enqueue(record, "a")
            assert s.is_flushed
            raise Undo
    assert ran == []
    assert not Order.objects.exists()


def test_released_0_1_0a2_bug_intent_from_rolled_back_atomic_never_dispatches(
    ran: list[tuple[str, bool]],
) -> None:
    # The case: the scope is outside the atomic block and flushes normally.
    with airlock.scope():
        try:
            with transaction.atomic():
                Order.objects.create(label="a")
                airlock.enqueue(record, "rolled-back")
                raise ValueError
        except ValueError:
            pass
        airlock.enqueue(record, "kept")
    assert labels() == ["kept"]
    assert not Order.objects.exists()


def test_the_plain_core_scope_has_the_bug_that_django_scope_fixes(ran: list[tuple[str, bool]]) -> None:
    # Control: the same code in a transaction-unaware scope dispatches the ghost.
    with airlock.scope(_cls=Scope):
        try:
            with transaction.atomic():
                airlock.enqueue(record, "rolled-back")
                raise ValueError
        except ValueError:
            pass
    assert labels() == ["rolled-back"]


def test_nested_savepoint_rollback_drops_only_that_savepoints_intents(ran: list[tuple[str, bool]]) -> None:
    with airlock.scope():
        with transaction.atomic():
            airlock.enqueue(record, "outer-1")
            with transaction.atomic():
                airlock.enqueue(record, "sp1")
                try:
                    with transaction.atomic():
                        Order.objects.create(label="sp2")
                        airlock.enqueue(record, "sp2-rolled-back")
                        with transaction.atomic():
                            airlock.enqueue(record, "sp3-inside-rolled-back")
                        raise Undo
                except Undo:
                    pass
                airlock.enqueue(record, "sp1-after")
            airlock.enqueue(record, "outer-2")
    assert labels() == ["outer-1", "sp1", "sp1-after", "outer-2"]
    assert not Order.objects.filter(label="sp2").exists()


def test_a_low_level_savepoint_rollback_is_as_invisible_as_it_is_to_on_commit(
    ran: list[tuple[str, bool]],
) -> None:
    # Documented limit (docs/integrations/django.md, Failures and edge cases): Django does not
    # record a savepoint made with transaction.savepoint() as a level, so its on_commit keeps the
    # callbacks registered after it when it rolls back, and airlock keeps the intents alike.
    by_hand: list[str] = []
    with transaction.atomic():
        sid = transaction.savepoint()
        with airlock.scope():
            airlock.enqueue(record, "after-low-level-savepoint")
        transaction.on_commit(lambda: by_hand.append("after-low-level-savepoint"))
        transaction.savepoint_rollback(sid)
    assert labels() == by_hand == ["after-low-level-savepoint"]


def test_scope_inside_the_transaction_drops_a_rolled_back_savepoint_and_waits_for_commit(
    ran: list[tuple[str, bool]],
) -> None:
    with transaction.atomic():
        with airlock.scope():
            airlock.enqueue(record, "kept")
            try:
                with transaction.atomic():
                    airlock.enqueue(record, "rolled-back")
                    raise Undo
            except Undo:
                pass
        assert ran == []
    assert ran == [("kept", False)]


def test_scope_in_a_released_savepoint_still_waits_for_the_outer_transaction(
    ran: list[tuple[str, bool]],
) -> None:
    with pytest.raises(Undo):
        with transaction.atomic():
            with transaction.atomic():
                with airlock.scope():
                    airlock.enqueue(record, "a")
            assert ran == []
            raise Undo
    assert ran == []


def test_failed_atomic_without_savepoint_dooms_its_intents(ran: list[tuple[str, bool]]) -> None:
    with airlock.scope():
        with pytest.raises(Undo):
            with transaction.atomic():
                airlock.enqueue(record, "outer")
                try:
                    with transaction.atomic(savepoint=False):
                        airlock.enqueue(record, "no-savepoint")
                        raise Undo
                except Undo:
                    pass
                raise Undo  # the outer block is marked for rollback anyway
    assert ran == []


def test_nested_scopes_keep_transaction_exactness_when_captured(ran: list[tuple[str, bool]]) -> None:
    with airlock.scope() as outer:
        try:
            with transaction.atomic():
                with airlock.scope(_cls=Scope):  # even a plain inner scope inherits the check
                    airlock.enqueue(record, "inner-rolled-back")
                raise Undo
        except Undo:
            pass
        with transaction.atomic():
            with airlock.scope():
                airlock.enqueue(record, "inner-committed")
    assert [i.args[0] for i in outer.captured_intents] == ["inner-rolled-back", "inner-committed"]
    assert labels() == ["inner-committed"]


def test_one_on_commit_registration_per_flush_not_per_intent(ran: list[tuple[str, bool]]) -> None:
    conn = connections["default"]

    def callbacks_of_one_flush(n: int) -> list[str]:
        with transaction.atomic():
            before = len(conn.run_on_commit)
            with airlock.scope():
                for i in range(n):
                    airlock.enqueue(record, f"{n}-{i}")
            return [getattr(f, "__name__", type(f).__name__) for _, f, *_ in conn.run_on_commit[before:]]

    one, many = callbacks_of_one_flush(1), callbacks_of_one_flush(200)
    # One callback: the marker of the level the intents were made in, which
    # also carries the flush (it waits for the same commit).
    assert one == many == ["airlock_after_commit"]
    assert len(ran) == 201


def test_intents_across_savepoint_levels_register_one_marker_per_level(ran: list[tuple[str, bool]]) -> None:
    conn = connections["default"]
    with transaction.atomic():
        with airlock.scope():
            for _ in range(10):
                airlock.enqueue(record, "outer")
            with transaction.atomic():
                for _ in range(10):
                    airlock.enqueue(record, "inner")
            for _ in range(10):
                airlock.enqueue(record, "outer-again")
        names = [getattr(f, "__name__", type(f).__name__) for _, f, *_ in conn.run_on_commit]
    # One marker per level; the flush rides on the outer level's.
    assert names == ["airlock_after_commit", "airlock_after_commit"]
    assert len(ran) == 30


def test_using_waits_for_the_named_database(ran: list[tuple[str, bool]]) -> None:
    with transaction.atomic(using="other"):
        with airlock.scope(using="other") as s:
            Order.objects.using("other").create(label="o")
            airlock.enqueue(record, "other-commit")
        assert s.using == "other" and ran == []
    assert labels() == ["other-commit"]
    # A transaction open on another database holds it back too (SPEC 5.4:
    # any alias), whatever ``using`` names.
    with transaction.atomic():
        with airlock.scope(using="other"):
            airlock.enqueue(record, "while-default-open")
        assert ran[-1] == ("other-commit", False)
    assert ran[-1] == ("while-default-open", False)


def test_using_drops_on_the_named_database_rollback(ran: list[tuple[str, bool]]) -> None:
    with pytest.raises(Undo):
        with transaction.atomic(using="other"):
            with airlock.scope(using="other"):
                airlock.enqueue(record, "o")
            raise Undo
    assert ran == []


def test_rollback_on_any_database_voids_intents_made_inside_it(ran: list[tuple[str, bool]]) -> None:
    with airlock.scope():  # waits for "default" ...
        try:
            with transaction.atomic(using="other"):  # ... but the block on "other" rolled back
                airlock.enqueue(record, "made-in-other")
                raise Undo
        except Undo:
            pass
    assert ran == []


def test_using_default_comes_from_scope_kwargs_setting(settings: object, ran: list[tuple[str, bool]]) -> None:
    settings.AIRLOCK = {"SCOPE_KWARGS": {"using": "other"}}  # type: ignore[attr-defined]
    with airlock.scope() as s:
        pass
    assert isinstance(s, DjangoScope) and s.using == "other"


def test_unknown_alias_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"using='nope'.*DATABASES defines: default, other"):
        DjangoScope(using="nope")


def test_failing_dispatch_after_commit_is_logged_and_other_callbacks_still_run(
    ran: list[tuple[str, bool]], caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise OSError("smtp down")

    caplog.set_level(logging.ERROR)
    with transaction.atomic():
        with airlock.scope():
            airlock.enqueue(broken)
            airlock.enqueue(record, "after-broken")
        transaction.on_commit(lambda: record("user-callback"))
    assert labels() == ["after-broken", "user-callback"]
    airlock_errors = [r for r in caplog.records if r.name == "airlock"]
    assert len(airlock_errors) == 1 and "broken" in airlock_errors[0].getMessage()


def test_failing_dispatch_outside_a_transaction_raises_dispatch_error(ran: list[tuple[str, bool]]) -> None:
    def broken() -> None:
        raise OSError("smtp down")

    with pytest.raises(DispatchError) as info:
        with airlock.scope():
            airlock.enqueue(broken)
            airlock.enqueue(record, "still-attempted")
    assert [type(e) for e in info.value.exceptions] == [OSError]
    assert labels() == ["still-attempted"]


def test_manual_transaction_management_is_refused_at_flush(ran: list[tuple[str, bool]]) -> None:
    conn = connections["default"]
    conn.ensure_connection()
    conn.set_autocommit(False)
    try:
        s = DjangoScope()
        with pytest.raises(UsageError, match="manual transaction management"):
            with s:
                airlock.enqueue(record, "a")
    finally:
        conn.rollback()
        conn.set_autocommit(True)
    assert ran == []


def test_async_scope_outside_a_transaction_awaits_coroutine_tasks(ran: list[tuple[str, bool]]) -> None:
    async def main() -> None:
        async with airlock.scope():
            airlock.enqueue(arecord, "coroutine")
            airlock.enqueue(record, "plain")
            assert ran == []

    asyncio.run(main())
    assert labels() == ["coroutine", "plain"]


def test_async_flush_inside_atomic_on_the_loop_is_refused(
    ran: list[tuple[str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Django forbids atomic() in async code unless told it is safe; if it is
    # used anyway, airlock refuses to dispatch before the commit.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    async def unit_of_work() -> None:
        try:
            with transaction.atomic():
                async with airlock.scope():
                    airlock.enqueue(arecord, "never")
        finally:
            connections.close_all()  # the event loop's own connection

    with pytest.raises(
        UsageError, match=r"asynchronously inside transaction.atomic\(\) on database 'default'"
    ):
        asyncio.run(unit_of_work())
    assert ran == []


def test_sync_scope_around_async_to_sync_code_waits_for_the_commit(ran: list[tuple[str, bool]]) -> None:
    # The coroutine runs on another thread (another connection); its enqueue
    # still lands in the sync scope, which defers to this thread's transaction.
    async def domain_code() -> None:
        airlock.enqueue(record, "from-coroutine")

    with pytest.raises(Undo):
        with transaction.atomic():
            with airlock.scope():
                async_to_sync(domain_code)()
            raise Undo
    with transaction.atomic():
        with airlock.scope():
            async_to_sync(domain_code)()
        assert ran == []
    assert ran == [("from-coroutine", False)]


def test_a_root_scope_that_outlives_its_atomic_level_follows_that_levels_fate(
    ran: list[tuple[str, bool]],
) -> None:
    # Used imperatively, a scope entered inside atomic() can be flushed after
    # the block ended: its intents made at that level follow the block.
    for outcome in ("commit", "rollback"):
        scope = DjangoScope()
        try:
            with transaction.atomic():
                scope.enter()
                Order.objects.create(label=outcome)
                airlock.enqueue(record, outcome)
                scope.exit()
                if outcome == "rollback":
                    raise Undo
        except Undo:
            pass
        scope.flush()
    assert labels() == ["commit"]


def test_intents_at_the_scopes_own_level_carry_no_condition_deeper_ones_do(
    ran: list[tuple[str, bool]],
) -> None:
    with transaction.atomic():
        with airlock.scope():
            own = airlock.enqueue(record, "own")
            with transaction.atomic():
                deeper = airlock.enqueue(record, "deeper")
            try:
                with transaction.atomic():
                    airlock.enqueue(record, "rolled-back")
                    raise Undo
            except Undo:
                pass
        assert own._meta is None or not own._meta.conditions
        assert deeper._meta is not None and deeper._meta.conditions
    assert labels() == ["own", "deeper"]


class _EnqueuesOnEnqueue(airlock.Policy):
    """A misbehaving policy: its on_enqueue tries to enqueue (when judging intent "a")."""

    def on_enqueue(self, intent: airlock.Intent) -> None:
        if intent.args == ("a",):
            airlock.enqueue(record, "sneaky")


@pytest.mark.parametrize("in_atomic", [False, True], ids=["autocommit", "atomic"])
@pytest.mark.parametrize("where", ["scope policy", "local policy"])
def test_a_policy_enqueuing_from_on_enqueue_is_refused_even_though_the_tie_runs_unguarded(
    where: str, in_atomic: bool, ran: list[tuple[str, bool]]
) -> None:
    # The transaction tie skips the core's per-intent guard; a policy's
    # callback must still be caught by it.
    with transaction.atomic() if in_atomic else contextlib.nullcontext():
        policy = _EnqueuesOnEnqueue()
        with DjangoScope(policy=policy if where == "scope policy" else None) as s:
            airlock.enqueue(record, "before")  # the checks are resolved here
            with airlock.policy(policy) if where == "local policy" else contextlib.nullcontext():
                with pytest.raises(airlock.PolicyEnqueueError, match="policy callback"):
                    airlock.enqueue(record, "a")
            assert airlock.get_current_scope() is s
            assert [i.args for i in s.intents] == [("before",)]
    assert ("sneaky", False) not in ran and ("sneaky", True) not in ran


def test_with_one_database_the_flush_rides_the_marker_and_waits_for_the_commit(
    ran: list[tuple[str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A project with one database: no other database to wait for after the
    # commit, so the flush's callback is registered as it is.
    from airlock.integrations.django import scope as module

    monkeypatch.setattr(module, "_thread_connections", lambda: (connections["default"],))
    conn = connections["default"]
    for outcome in ("commit", "rollback"):
        try:
            with transaction.atomic():
                before, dispatched = len(conn.run_on_commit), len(ran)
                with airlock.scope() as s:
                    airlock.enqueue(record, outcome)
                    with transaction.atomic():
                        airlock.enqueue(record, f"{outcome}-savepoint")
                assert s._tie is not None and s._tie.wrappers == (conn,)
                assert len(ran) == dispatched  # not before the commit
                names = [getattr(f, "__name__", "") for _, f, *_ in conn.run_on_commit[before:]]
                assert names == ["airlock_after_commit", "airlock_after_commit"]
                if outcome == "rollback":
                    raise Undo
        except Undo:
            pass
    assert labels() == ["commit", "commit-savepoint"]


def test_with_one_database_a_flush_outside_the_entry_level_registers_its_own_callback(
    ran: list[tuple[str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airlock.integrations.django import scope as module

    monkeypatch.setattr(module, "_thread_connections", lambda: (connections["default"],))
    conn = connections["default"]
    with transaction.atomic():
        scope = DjangoScope()
        scope.enter()
        airlock.enqueue(record, "at entry")
        with transaction.atomic():
            # Used imperatively, the root scope flushes one level deeper than
            # it was entered at, where no marker is pending to ride on.
            scope.exit()
            scope.flush()
            names = [getattr(f, "__name__", "") for _, f, *_ in conn.run_on_commit]
            assert names == ["airlock_after_commit", "airlock_dispatch_after_commit"]
        assert ran == []
    assert labels() == ["at entry"]


@pytest.mark.parametrize("outcome", ["commit", "savepoint rollback"])
def test_a_scope_in_atomic_leaves_no_reference_cycles(outcome: str, ran: list[tuple[str, bool]]) -> None:
    # Scopes, their intents and the transaction markers are freed when the
    # unit of work ends, not left to the garbage collector. (Not yet when the
    # transaction rolls back after the flush: the marker carrying the flush
    # stays in the on-commit list Django discards, which the scope's tie
    # still refers to.)
    def unit() -> None:
        with transaction.atomic():
            with airlock.scope():
                airlock.enqueue(record, "at entry")
                try:
                    with transaction.atomic():
                        airlock.enqueue(record, "in a savepoint")
                        if outcome == "savepoint rollback":
                            raise Undo
                except Undo:
                    pass

    unit()  # warm up: imports, caches
    gc.collect()
    gc.disable()
    try:
        gc.set_debug(gc.DEBUG_SAVEALL)
        for _ in range(3):
            unit()
        connections["default"].__dict__.pop("_airlock_markers", None)  # the last transaction's markers
        gc.collect()
        leaked = [type(o).__name__ for o in gc.garbage if type(o).__module__.startswith("airlock")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert leaked == [], sorted(set(leaked))
