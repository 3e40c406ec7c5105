"""airlock-py 0.1's documented Django API, used the way its docs show (SPEC 5.3).

Runs outside tests/integrations/django on purpose: nothing configured airlock
for these tests (tests/conftest.py resets it), as in a project that did not
add the app to INSTALLED_APPS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from django.test import Client, modify_settings

import airlock
from airlock.integrations.django import (
    DjangoScope,
    configure_from_settings,
    get_executor,
    get_policy,
    get_scope_class,
    get_setting,
)
from integrations.django.testapp.effects import RAN, labels, record

SENT: list[str] = []


def send_to_queue(intent: airlock.Intent) -> None:
    """The project's executor (what AIRLOCK["EXECUTOR"] names)."""
    SENT.append(intent.name)


@pytest.fixture(autouse=True)
def _clean() -> Any:
    RAN.clear()
    SENT.clear()
    yield
    RAN.clear()
    SENT.clear()


def test_the_settings_helpers_are_importable_from_the_integration(settings: Any) -> None:
    settings.AIRLOCK = {"POLICY": "airlock.DropAll", "EXECUTOR": f"{__name__}.send_to_queue"}
    assert get_scope_class() is DjangoScope
    assert isinstance(get_policy(), airlock.DropAll)
    assert get_executor() is send_to_queue
    assert get_setting("EXECUTOR") == f"{__name__}.send_to_queue"
    assert get_setting("SCOPE", "fallback") == "fallback"


@pytest.mark.django_db(transaction=True)
def test_django_scope_uses_the_airlock_executor_setting_without_the_app(settings: Any) -> None:
    settings.AIRLOCK = {"EXECUTOR": f"{__name__}.send_to_queue"}
    with modify_settings(INSTALLED_APPS={"remove": ["airlock.integrations.django"]}):
        with DjangoScope() as scope:
            airlock.enqueue(record, "queued")
        assert scope.executor is send_to_queue
    assert SENT == ["record"] and RAN == []


class ImmediateDjangoScope(DjangoScope):
    """Dispatch right away instead of after the commit (the docs' example of the hook)."""

    def schedule_dispatch(self, callback: Callable[[], None]) -> None:
        callback()


class CountingDjangoScope(DjangoScope):
    scheduled: list[Callable[[], None]] = []

    def schedule_dispatch(self, callback: Callable[[], None]) -> None:
        self.scheduled.append(callback)
        super().schedule_dispatch(callback)


@pytest.mark.django_db(transaction=True)
def test_schedule_dispatch_is_the_hook_for_dispatch_timing() -> None:
    with transaction.atomic():
        with ImmediateDjangoScope():
            airlock.enqueue(record, "now")
        assert labels() == ["now"]  # before the commit: the subclass said so


@pytest.mark.django_db(transaction=True)
def test_schedule_dispatch_is_called_once_per_flush_and_defaults_to_on_commit() -> None:
    CountingDjangoScope.scheduled.clear()
    with transaction.atomic():
        with CountingDjangoScope():
            for i in range(5):
                airlock.enqueue(record, f"r{i}")
        assert len(CountingDjangoScope.scheduled) == 1
        assert RAN == []  # the default waits for the commit
    assert labels() == [f"r{i}" for i in range(5)]
    with pytest.raises(ZeroDivisionError):
        with transaction.atomic():
            with CountingDjangoScope():
                airlock.enqueue(record, "rolled-back")
            1 / 0
    assert len(CountingDjangoScope.scheduled) == 2 and "rolled-back" not in labels()


class TenantScope(DjangoScope):
    """A custom scope taking keyword arguments only, like the original's DjangoScope."""

    def __init__(self, **kwargs: Any) -> None:
        self.tenant = kwargs.pop("tenant", None)
        super().__init__(**kwargs)


class PolicyAndExecutorOnlyScope(DjangoScope):
    def __init__(self, policy: Any = None, executor: Any = None) -> None:
        super().__init__(policy=policy, executor=executor)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("scope_path", "scope_kwargs"),
    [(f"{__name__}.TenantScope", {"tenant": "acme"}), (f"{__name__}.PolicyAndExecutorOnlyScope", {})],
)
def test_a_custom_scope_class_in_the_airlock_setting_works_in_the_middleware(
    settings: Any, scope_path: str, scope_kwargs: dict[str, Any]
) -> None:
    settings.AIRLOCK = {"SCOPE": scope_path, "SCOPE_KWARGS": scope_kwargs}
    configure_from_settings()
    response = Client().get("/effect/200/")
    assert response.status_code == 200
    scope = response.wsgi_request.airlock_scope
    assert type(scope).__qualname__ == scope_path.rsplit(".", 1)[1]
    assert scope.origin == "GET /effect/200/"
    assert getattr(scope, "tenant", "acme") == "acme"
    assert labels() == ["status-200"]
