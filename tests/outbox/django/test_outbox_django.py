"""The outbox on Django (pytest-django): scope, savepoints, relay command, admin."""

from __future__ import annotations

import asyncio
import json
from io import StringIO
from typing import Any

import outbox_support
import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client, override_settings
from outbox_admin_settings import ADMIN_SETTINGS
from outbox_support import poison, record, record_with_id

import airlock
from airlock.outbox import OutboxSerializationError
from airlock.outbox.django import DjangoOutboxScope, DjangoStorage
from airlock.outbox.django.models import OutboxRow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    outbox_support.seen.clear()


def stored() -> list[list[Any]]:
    return [json.loads(r.args) for r in OutboxRow.objects.order_by("seq")]


def outbox(**kwargs: Any) -> airlock.Scope:
    return airlock.scope(_cls=DjangoOutboxScope, **kwargs)


def relay(*args: str) -> str:
    out = StringIO()
    call_command("airlock_relay", "--until-idle", "--idle-max", "0.05", *args, stdout=out)
    return out.getvalue()


def test_commit_stores_rows() -> None:
    with transaction.atomic():
        with outbox() as scope:
            airlock.enqueue(record, 1, label="a")
            airlock.enqueue(record, 2)
        assert OutboxRow.objects.count() == 2  # inserted in the open transaction
    rows = list(OutboxRow.objects.order_by("seq"))
    assert [r.outbox_id for r in rows] == scope.stored_ids  # type: ignore[attr-defined]
    assert rows[0].task == "outbox_support:record" and json.loads(rows[0].kwargs) == {"label": "a"}
    assert {r.state for r in rows} == {"pending"}


def test_rollback_leaves_no_row() -> None:
    with pytest.raises(KeyError):
        with transaction.atomic():
            with outbox():
                airlock.enqueue(record, 1)
            raise KeyError
    assert OutboxRow.objects.count() == 0


def test_savepoint_rolled_back_before_the_flush_voids_its_intents() -> None:
    with transaction.atomic():
        with outbox():
            airlock.enqueue(record, 1)
            with pytest.raises(KeyError):
                with transaction.atomic():
                    airlock.enqueue(record, 2)
                    with transaction.atomic():
                        airlock.enqueue(record, 3)
                    raise KeyError
            with transaction.atomic():
                airlock.enqueue(record, 4)
    assert stored() == [[1], [4]]


def test_flush_inside_a_savepoint_that_rolls_back_leaves_no_row() -> None:
    with transaction.atomic():
        with outbox():
            airlock.enqueue(record, 1)
        with pytest.raises(KeyError):
            with transaction.atomic():
                with outbox():
                    airlock.enqueue(record, 2)
                raise KeyError
    assert stored() == [[1]]


def test_scope_around_the_transaction_still_drops_rolled_back_work() -> None:
    with outbox() as scope:
        with pytest.raises(KeyError):
            with transaction.atomic():
                airlock.enqueue(record, 1)
                raise KeyError
        airlock.enqueue(record, 3)  # autocommit: stored at flush in its own transaction
    assert stored() == [[3]] and len(scope.stored_ids) == 1  # type: ignore[attr-defined]


def test_intent_whose_transaction_committed_before_the_flush_raises_and_stores_nothing() -> None:
    # Django has no hook before a commit: the row cannot join the committed transaction,
    # and writing it late (a crash away from being lost) is refused at the scope's exit.
    with pytest.raises(airlock.UsageError, match=r"cannot store 1 intent\(s\) \(record\).*already committed"):
        with outbox() as scope:
            with transaction.atomic():
                airlock.enqueue(record, 1)
            airlock.enqueue(record, 2)
    assert stored() == [] and scope.stored_ids == []  # type: ignore[attr-defined]


def test_one_marker_per_transaction_level_not_per_intent() -> None:
    from django.db import connection

    with transaction.atomic():
        with outbox():
            for n in range(500):
                airlock.enqueue(record, n)
            with transaction.atomic():
                for n in range(500):
                    airlock.enqueue(record, n)
            callbacks = len(connection.run_on_commit)
    assert callbacks == 2  # one per level: flushing 1,000 intents checks 2 markers, not 1,000
    assert len(stored()) == 1000


def test_policies_nesting_and_checks() -> None:
    with transaction.atomic(), outbox(policy=airlock.BlockTasks({"poison"})) as scope:
        airlock.enqueue(record, 1)
        airlock.enqueue(poison, 2)
        with airlock.scope():
            airlock.enqueue(record, 3)
            with pytest.raises(OutboxSerializationError, match=r"record: argument 0 \(1,\)"):
                airlock.enqueue(record, (1,))
        assert [i.args for i in scope.intents] == [(1,), (2,), (3,)]
    assert stored() == [[1], [3]]


def test_configure_switch_and_unknown_database() -> None:
    airlock.configure(scope_cls=DjangoOutboxScope)
    with transaction.atomic(), airlock.scope() as scope:
        airlock.enqueue(record, 1)
    assert isinstance(scope, DjangoOutboxScope) and stored() == [[1]]
    with pytest.raises(ValueError, match=r"no database 'nope' in DATABASES"):
        DjangoOutboxScope(using="nope")


def test_async_scope_stores_rows() -> None:
    async def main() -> list[str]:
        async with outbox() as scope:
            airlock.enqueue(record, 1)
        return scope.stored_ids  # type: ignore[attr-defined, no-any-return]

    ids = asyncio.run(main())
    assert [r.outbox_id for r in OutboxRow.objects.all()] == ids and len(ids) == 1


def test_relay_command_dispatches_with_the_row_id() -> None:
    with transaction.atomic(), outbox() as scope:
        airlock.enqueue(record_with_id, 1)
        airlock.enqueue(record, 2)
    out = relay()
    ids = scope.stored_ids  # type: ignore[attr-defined]
    assert outbox_support.seen == [(1, ids[0]), (2, "")]
    assert "relayed 2 row(s): 0 failed, 0 dead" in out
    status = StringIO()
    call_command("airlock_relay", "--status", "--json", stdout=status)
    assert json.loads(status.getvalue()) == {
        "pending": 0, "in_flight": 0, "failed": 0, "dead": 0, "done": 2, "oldest_age": None,
    }  # fmt: skip
    out = StringIO()
    call_command("airlock_relay", "--prune", "0", stdout=out)
    assert "pruned 2 done/dead row(s)" in out.getvalue() and OutboxRow.objects.count() == 0


def test_poison_is_dead_lettered_and_retried_from_the_command() -> None:
    with transaction.atomic(), outbox() as scope:
        airlock.enqueue(poison, 1)
        airlock.enqueue(record, 2)
    relay("--max-attempts", "1")
    bad, good = (OutboxRow.objects.get(outbox_id=i) for i in scope.stored_ids)  # type: ignore[attr-defined]
    assert (bad.state, bad.attempts, good.state) == ("dead", 1, "done")
    assert "RuntimeError: poison 1 always fails" in (bad.last_error or "")
    out = StringIO()
    call_command("airlock_relay", "--retry", bad.outbox_id, stdout=out)
    assert "1 row(s) back to pending" in out.getvalue()
    bad.refresh_from_db()
    assert (bad.state, bad.attempts) == ("pending", 0)


def test_leases_and_ordering_keys_in_the_orm_storage() -> None:
    with transaction.atomic(), outbox():
        for n in range(3):
            airlock.enqueue(record, n, _dispatch_options={"outbox_ordering_key": "k"})
        airlock.enqueue(record, 9)
    storage = DjangoStorage()
    token, rows = storage.claim(10, lease=60)
    assert [json.loads(r.args) for r in rows] == [[0], [9]]  # one row per key per claim, in order
    assert storage.claim(10, lease=60)[1] == []  # nothing else claimable while those are in flight
    assert storage.status().in_flight == 2
    storage.finish(token, [r.id for r in rows], [], [])
    assert [json.loads(r.args) for r in storage.claim(10, lease=60)[1]] == [[1]]


def test_relay_command_rejects_bad_arguments() -> None:
    with pytest.raises(CommandError, match="no database 'nope'"):
        call_command("airlock_relay", "--database", "nope")
    with pytest.raises(CommandError, match="cannot import 'no.such.executor'"):
        call_command("airlock_relay", "--executor", "no.such.executor")
    with pytest.raises(CommandError, match=r"batch_size=\.\.\.\) must be a positive integer"):
        call_command("airlock_relay", "--batch-size", "0")


@override_settings(**ADMIN_SETTINGS)
def test_admin_is_read_only_and_offers_retry_and_dead_letter() -> None:
    with transaction.atomic(), outbox() as scope:
        airlock.enqueue(poison, 1)
        airlock.enqueue(record, 2)
    relay("--max-attempts", "1")
    dead_id, done_id = scope.stored_ids  # type: ignore[attr-defined]
    admin_user = User.objects.create_superuser("admin", "a@example.com", "pw")
    client = Client()
    client.force_login(admin_user)
    page = client.get("/admin/airlock_outbox/outboxrow/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "poison 1 always fails" in text and ">dead<" in text and ">done<" in text
    assert "Retry now" in text and "Dead-letter" in text
    assert client.get("/admin/airlock_outbox/outboxrow/add/").status_code == 403
    dead = OutboxRow.objects.get(outbox_id=dead_id)
    change = client.get(f"/admin/airlock_outbox/outboxrow/{dead.seq}/change/").content.decode()
    assert 'name="state"' not in change  # every field read-only
    url = "/admin/airlock_outbox/outboxrow/"
    client.post(url, {"action": "retry", "_selected_action": [dead.seq]})
    dead.refresh_from_db()
    assert (dead.state, dead.attempts) == ("pending", 0)
    client.post(url, {"action": "dead_letter", "_selected_action": [dead.seq]})
    dead.refresh_from_db()
    assert dead.state == "dead" and dead.last_error == "dead-lettered by hand"
    # A done row is neither retried nor dead-lettered.
    done = OutboxRow.objects.get(outbox_id=done_id)
    client.post(url, {"action": "dead_letter", "_selected_action": [done.seq]})
    done.refresh_from_db()
    assert done.state == "done"


def test_airlock_setting_makes_the_outbox_the_default_scope() -> None:
    @airlock.scoped
    def place_order() -> None:
        airlock.enqueue(record, 1)

    setting = {"SCOPE": "airlock.outbox.django.DjangoOutboxScope", "SCOPE_KWARGS": {"using": "default"}}
    with override_settings(AIRLOCK=setting):  # the Django integration reconfigures airlock from it
        assert airlock.get_configuration()["scope_cls"] is DjangoOutboxScope
        with transaction.atomic():
            place_order()
    assert stored() == [[1]]


def test_dead_rows_are_pruned_from_the_command_after_their_retention() -> None:
    import datetime as dt

    from django.utils import timezone

    with transaction.atomic(), outbox() as scope:
        airlock.enqueue(poison, 1)
        airlock.enqueue(poison, 2)
        airlock.enqueue(record, 3)
    relay("--max-attempts", "1")
    old_dead, new_dead, done = scope.stored_ids  # type: ignore[attr-defined]
    OutboxRow.objects.filter(outbox_id=old_dead).update(done_at=timezone.now() - dt.timedelta(days=31))
    out = StringIO()
    call_command("airlock_relay", "--prune", "604800", "--prune-dead", str(30 * 24 * 3600), stdout=out)
    assert "pruned 1 done/dead row(s)" in out.getvalue()
    assert set(OutboxRow.objects.values_list("outbox_id", flat=True)) == {new_dead, done}


def test_ordering_key_rows_lock_their_key_until_commit() -> None:
    from airlock.outbox.django.models import OutboxKey

    with transaction.atomic(), outbox():
        airlock.enqueue(record, 1, _dispatch_options={"outbox_ordering_key": "k"})
        airlock.enqueue(record, 2, _dispatch_options={"outbox_ordering_key": "k"})
    with transaction.atomic(), outbox():
        airlock.enqueue(record, 3, _dispatch_options={"outbox_ordering_key": "k"})
    assert list(OutboxKey.objects.values_list("ordering_key", "writes")) == [("k", 2)]  # one lock per flush


@override_settings(ROOT_URLCONF="outbox_urls", MIDDLEWARE=["airlock.integrations.django.AirlockMiddleware"])
def test_outbox_scope_inside_the_request_scope_stores_durably() -> None:
    client = Client()
    assert client.get("/order/?n=1").status_code == 200
    assert stored() == [[1]]  # stored at the outbox scope's flush: the request scope did not capture it
    assert outbox_support.seen == []  # and did not run it in-process either
    # The request then fails (500): the rows committed with the order's data stay; data decides.
    assert client.get("/order/?n=2&status=500").status_code == 500
    assert stored() == [[1], [2]]


@override_settings(ROOT_URLCONF="outbox_urls", MIDDLEWARE=["airlock.integrations.django.AirlockMiddleware"])
def test_dry_run_request_policy_stores_nothing() -> None:
    airlock.configure(policy=airlock.DropAll())
    assert Client().get("/order/?n=1").status_code == 200
    assert stored() == []
