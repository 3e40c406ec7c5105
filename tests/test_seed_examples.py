"""Code written against the original project page runs unchanged (issue 2)."""

from __future__ import annotations

import pytest

import airlock
from core_helpers import Recorder

rec = Recorder()
notify_warehouse = rec.task("notify_warehouse")
send_confirmation_email = rec.task("send_confirmation_email")


class Order:
    id = 7
    status = "new"

    def process(self) -> None:
        self.status = "processed"
        airlock.enqueue(notify_warehouse, self.id)
        airlock.enqueue(send_confirmation_email)

    def hopefully_pure_function(self) -> None:
        airlock.enqueue(notify_warehouse, self.id)


@pytest.fixture(autouse=True)
def _clear() -> None:
    rec.calls.clear()


def test_production_endpoint_flushes_at_the_end() -> None:
    order = Order()
    with airlock.scope():
        order.process()
        assert rec.calls == []
    assert rec.calls == [("notify_warehouse", (7,), {}), ("send_confirmation_email", (), {})]


def test_migration_suppresses_everything() -> None:
    with airlock.scope(policy=airlock.DropAll()):
        Order().process()
    assert rec.calls == []


def test_assert_no_effects_raises_on_enqueue() -> None:
    with pytest.raises(airlock.PolicyViolation):
        with airlock.scope(policy=airlock.AssertNoEffects()):
            Order().hopefully_pure_function()
    assert rec.calls == []


def test_surface_the_side_effects() -> None:
    with airlock.scope(policy=airlock.DropAll()) as scope:
        Order().process()
        assert len(scope.intents) == 2
        assert [(i.name, i.args, i.kwargs) for i in scope.intents] == [
            ("notify_warehouse", (7,), {}),
            ("send_confirmation_email", (), {}),
        ]
    assert rec.calls == []


def test_selective_control() -> None:
    with airlock.scope(policy=airlock.BlockTasks({"send_confirmation_email"})) as scope:
        Order().process()
        assert len(scope.intents) == 2  # the blocked task remains enqueued while in the scope
    assert rec.names == ["notify_warehouse"]
