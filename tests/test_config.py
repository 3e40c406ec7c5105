"""SPEC §2.6: configure, get_configuration, reset_configuration."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import airlock
from airlock.integrations.executors.sync import sync_executor


def test_builtin_defaults() -> None:
    # SPEC §5.3: nothing configured reads as None; scopes use the built-ins.
    config = airlock.get_configuration()
    assert config == {"scope_cls": None, "policy": None, "executor": None, "scope_kwargs": None}
    s = airlock.scope()
    assert type(s) is airlock.Scope and isinstance(s.policy, airlock.AllowAll)
    assert s.executor is airlock._execute is sync_executor


class MyScope(airlock.Scope):
    pass


def my_executor(intent: airlock.Intent) -> None:
    pass


def test_configure_sets_and_none_leaves_unchanged() -> None:
    drop = airlock.DropAll()
    airlock.configure(scope_cls=MyScope, policy=drop, executor=my_executor, scope_kwargs={"origin": "x"})
    airlock.configure()  # all None: nothing changes
    airlock.configure(policy=None, executor=None)
    config = airlock.get_configuration()
    assert config == {
        "scope_cls": MyScope,
        "policy": drop,
        "executor": my_executor,
        "scope_kwargs": {"origin": "x"},
    }
    airlock.configure(executor=sync_executor)
    config = airlock.get_configuration()
    assert config["policy"] is drop and config["executor"] is sync_executor and config["scope_cls"] is MyScope


def test_scope_kwargs_are_replaced_not_merged() -> None:
    airlock.configure(scope_kwargs={"origin": "a"})
    airlock.configure(scope_kwargs={})
    assert airlock.get_configuration()["scope_kwargs"] == {}


def test_get_configuration_returns_a_copy() -> None:
    airlock.configure(scope_kwargs={"origin": "a"})
    config = airlock.get_configuration()
    config["scope_kwargs"]["origin"] = "changed"
    config["policy"] = airlock.DropAll()  # type: ignore[typeddict-item]
    assert airlock.get_configuration()["scope_kwargs"] == {"origin": "a"}
    assert airlock.get_configuration()["policy"] is None


def test_configure_copies_the_scope_kwargs_mapping() -> None:
    kwargs = {"origin": "a"}
    airlock.configure(scope_kwargs=kwargs)
    kwargs["origin"] = "b"
    assert airlock.scope().origin == "a"


def test_reset_restores_builtin_defaults() -> None:
    airlock.configure(
        scope_cls=MyScope, policy=airlock.DropAll(), executor=my_executor, scope_kwargs={"origin": "x"}
    )
    airlock.reset_configuration()
    config = airlock.get_configuration()
    assert config == {"scope_cls": None, "policy": None, "executor": None, "scope_kwargs": None}


def test_configured_defaults_are_used_by_scopes() -> None:
    ran: list[str] = []
    airlock.configure(scope_cls=MyScope, executor=lambda i: ran.append(i.name))
    with airlock.scope() as s:
        airlock.enqueue(print, _name="x")
    assert type(s) is MyScope and ran == ["x"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scope_cls": object}, "subclass of airlock.Scope"),
        ({"scope_cls": airlock.Scope()}, "subclass of airlock.Scope"),
        ({"policy": airlock.DropAll}, r"DropAll\(\)"),
        ({"policy": object()}, "on_enqueue"),
        ({"executor": "sync"}, "callable"),
        ({"scope_kwargs": [("origin", "x")]}, "mapping"),
    ],
    ids=["class-not-scope", "scope-instance", "policy-class", "not-a-policy", "executor", "scope-kwargs"],
)
def test_bad_configuration_is_a_type_error_and_changes_nothing(kwargs: dict[str, Any], match: str) -> None:
    before = airlock.get_configuration()
    with pytest.raises(TypeError, match=match):
        airlock.configure(**kwargs)
    assert airlock.get_configuration() == before


def test_configuration_is_safe_to_read_while_another_thread_reconfigures() -> None:
    # Two complete configurations alternate; every reader must always see one
    # of them whole, never a mix of the two.
    pairs = [(airlock.DropAll(), my_executor), (airlock.AllowAll(), sync_executor)]
    valid = {(id(p), id(e)) for p, e in pairs}
    stop = threading.Event()
    bad: list[Any] = []
    reads = [0]

    def writer() -> None:
        n = 0
        while not stop.is_set():
            policy, executor = pairs[n % 2]
            airlock.configure(policy=policy, executor=executor)
            n += 1

    def reader() -> None:
        for _ in range(2000):
            config = airlock.get_configuration()
            s = airlock.scope()
            for seen in ((config["policy"], config["executor"]), (s.policy, s.executor)):
                if (id(seen[0]), id(seen[1])) not in valid:
                    bad.append(seen)
            reads[0] += 1

    airlock.configure(policy=pairs[0][0], executor=pairs[0][1])
    writers = [threading.Thread(target=writer) for _ in range(2)]
    readers = [threading.Thread(target=reader) for _ in range(8)]
    for t in writers + readers:
        t.start()
    for t in readers:
        t.join(60)
    stop.set()
    for t in writers:
        t.join(10)
    assert bad == []
    assert reads[0] == 8 * 2000
