"""SPEC §2.2: the Intent value."""

from __future__ import annotations

import functools
from typing import Any

import pytest

import airlock


def send_email(*args: Any, **kwargs: Any) -> None:
    pass


class CeleryLikeTask:
    name = "proj.tasks.send_email"

    def __call__(self, *args: Any) -> None:
        pass


class DramatiqLikeActor:
    actor_name = "proj.actors.notify_warehouse"

    def __call__(self, *args: Any) -> None:
        pass


class HueyLikeTask:
    name = "rebuild_cache"  # not dotted: used as is

    def __call__(self) -> None:
        pass


class Anonymous:
    """A callable with no name attribute at all: str() is the last resort."""

    def __call__(self) -> None:
        pass

    def __str__(self) -> str:
        return "anonymous-callable"


class NonStringName:
    name = 42  # not a string: ignored

    def __call__(self) -> None:
        pass


def _intent(task: Any, *args: Any, **kwargs: Any) -> airlock.Intent:
    with airlock.scope(policy=airlock.DropAll()):
        return airlock.enqueue(task, *args, **kwargs)


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (send_email, "send_email"),
        (CeleryLikeTask(), "send_email"),
        (DramatiqLikeActor(), "notify_warehouse"),
        (HueyLikeTask(), "rebuild_cache"),
        (Anonymous(), "anonymous-callable"),
    ],
    ids=["function", "celery-dotted-name", "dramatiq-actor-name", "plain-name", "str-fallback"],
)
def test_name_rules(task: Any, expected: str) -> None:
    assert _intent(task).name == expected


def test_non_string_name_attribute_is_ignored() -> None:
    task = NonStringName()  # .name is 42 and there is no __name__: str(task) is used
    assert _intent(task).name == str(task)


def test_partial_without_name_falls_back_to_str() -> None:
    task = functools.partial(send_email, 1)
    assert _intent(task).name == str(task)


def test_explicit_name_wins() -> None:
    assert _intent(CeleryLikeTask(), _name="custom").name == "custom"
    assert _intent(send_email, _name="other").name == "other"


def test_bound_method_uses_its_name() -> None:
    class Mailer:
        def deliver(self) -> None:
            pass

    assert _intent(Mailer().deliver).name == "deliver"


def test_str_reads_like_a_call() -> None:
    assert str(_intent(send_email, 42, force=True)) == "send_email(42, force=True)"
    assert str(_intent(send_email)) == "send_email()"
    assert str(_intent(send_email, "a", [1])) == "send_email('a', [1])"


def test_repr_shows_name_args_kwargs_and_optional_fields() -> None:
    plain = repr(_intent(send_email, 1, x=2))
    assert "send_email" in plain and "(1,)" in plain and "{'x': 2}" in plain
    assert "origin" not in plain and "dispatch_options" not in plain

    full = repr(_intent(send_email, 1, _origin="/checkout", _dispatch_options={"queue": "mail"}))
    assert "'/checkout'" in full and "{'queue': 'mail'}" in full


def test_fields() -> None:
    opts = {"countdown": 5}
    intent = _intent(send_email, 1, 2, _origin="cli", _dispatch_options=opts, a=3)
    assert intent.task is send_email
    assert intent.args == (1, 2) and type(intent.args) is tuple
    assert intent.kwargs == {"a": 3}
    assert intent.origin == "cli"
    assert intent.dispatch_options == {"countdown": 5}
    assert intent.local_policies == ()
    opts["countdown"] = 99  # the caller's dict is not shared
    assert intent.dispatch_options == {"countdown": 5}


def test_defaults() -> None:
    intent = _intent(send_email)
    assert intent.args == () and type(intent.args) is tuple
    assert intent.kwargs == {}
    assert intent.origin is None
    assert intent.dispatch_options is None


def test_args_always_tuple_when_constructed_directly() -> None:
    intent = airlock.Intent(send_email, [1, 2], {"k": 1})  # type: ignore[arg-type]
    assert intent.args == (1, 2) and type(intent.args) is tuple
    assert intent.kwargs == {"k": 1}
    assert intent.name == "send_email"


@pytest.mark.parametrize(
    "field", ["task", "args", "kwargs", "origin", "dispatch_options", "name", "local_policies"]
)
def test_read_only(field: str) -> None:
    intent = _intent(send_email, 1)
    before = getattr(intent, field)
    with pytest.raises(AttributeError):
        setattr(intent, field, "changed")
    assert getattr(intent, field) == before


def test_no_new_attributes() -> None:
    intent = _intent(send_email)
    with pytest.raises(AttributeError):
        intent.something_else = 1  # type: ignore[attr-defined]


def test_unhashable_even_with_unhashable_arguments() -> None:
    intent = _intent(send_email, [1, 2], {"a": []})
    with pytest.raises(TypeError):
        hash(intent)
    with pytest.raises(TypeError):
        {intent}  # noqa: B018


def test_local_policies_and_passes_local_policies() -> None:
    drop = airlock.DropAll()
    allow = airlock.AllowAll()
    with airlock.scope(policy=airlock.DropAll()):
        with airlock.policy(allow):
            ok = airlock.enqueue(send_email)
            with airlock.policy(drop):
                dropped = airlock.enqueue(send_email)
    assert ok.local_policies == (allow,)
    assert ok.passes_local_policies() is True
    assert dropped.local_policies == (allow, drop)  # outermost first
    assert dropped.passes_local_policies() is False


def test_constructed_directly_with_every_field() -> None:
    drop = airlock.DropAll()
    options = {"queue": "q"}
    intent = airlock.Intent(
        send_email,
        (1,),
        {"a": 2},
        name="n",
        origin="o",
        dispatch_options=options,
        local_policies=[drop],  # type: ignore[arg-type]
    )
    options["queue"] = "changed"
    assert (intent.name, intent.origin, intent.dispatch_options) == ("n", "o", {"queue": "q"})
    assert intent.local_policies == (drop,) and intent.passes_local_policies() is False
    assert str(intent) == "n(1, a=2)"


def test_kwargs_of_one_intent_never_leak_into_another() -> None:
    calls: list[dict[str, Any]] = []

    def task(**kwargs: Any) -> None:
        calls.append(kwargs)

    with airlock.scope():
        a = airlock.enqueue(task)
        b = airlock.enqueue(task)
        with pytest.raises(TypeError, match="read-only"):
            a.kwargs["leak"] = True  # type: ignore[index]
        c = airlock.enqueue(task, x=1)
    assert b.kwargs == {} and c.kwargs == {"x": 1}
    assert calls[1] == {} and calls[2] == {"x": 1}
