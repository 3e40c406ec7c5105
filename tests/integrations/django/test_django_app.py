"""The app: configuration from settings.AIRLOCK, system checks, management commands."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

import airlock
from airlock.integrations.django import (
    SETTING_KEYS,
    DjangoScope,
    configure_from_settings,
    get_executor,
    get_policy,
    get_setting,
)
from airlock.integrations.executors.sync import sync_executor
from integrations.django.testapp.effects import labels, record

VALID = "Valid keys are: POLICY, EXECUTOR, SCOPE, SCOPE_KWARGS"


def calls(intent: airlock.Intent) -> Any:
    """An executor for the tests: records, then runs the task."""
    CALLED.append(intent.name)
    return intent.task(*intent.args, **intent.kwargs)


CALLED: list[str] = []


def make_drop_all() -> airlock.DropAll:
    return airlock.DropAll()


def make_not_a_policy() -> int:
    return 42


class NotAScope:
    pass


def run_checks() -> str:
    with pytest.raises(SystemCheckError) as info:
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    return str(info.value)


def test_the_app_configures_airlock_defaults() -> None:
    assert apps.get_app_config("airlock").name == "airlock.integrations.django"
    config = airlock.get_configuration()
    assert config["scope_cls"] is DjangoScope
    assert isinstance(config["policy"], airlock.AllowAll)
    assert config["executor"] is sync_executor
    assert config["scope_kwargs"] == {}


def test_setting_keys_is_one_tuple() -> None:
    assert SETTING_KEYS == ("POLICY", "EXECUTOR", "SCOPE", "SCOPE_KWARGS")


@pytest.mark.parametrize(
    "value",
    ["airlock.DropAll", airlock.DropAll, airlock.DropAll(), make_drop_all, f"{__name__}.make_drop_all"],
    ids=["path-to-class", "class", "instance", "factory", "path-to-factory"],
)
def test_policy_accepts_path_class_instance_or_factory(settings: Any, value: object) -> None:
    settings.AIRLOCK = {"POLICY": value}
    assert isinstance(get_policy(), airlock.DropAll)
    configure_from_settings()
    assert isinstance(airlock.get_configuration()["policy"], airlock.DropAll)


def test_executor_path_and_scope_kwargs_are_applied(settings: Any, ran: list[tuple[str, bool]]) -> None:
    CALLED.clear()
    settings.AIRLOCK = {
        "EXECUTOR": f"{__name__}.calls",
        "SCOPE": "airlock.integrations.django.DjangoScope",
        "SCOPE_KWARGS": {"using": "other"},
    }
    assert get_executor() is calls
    assert get_setting("SCOPE_KWARGS") == {"using": "other"}
    with airlock.scope() as s:  # override_settings reconfigured airlock
        airlock.enqueue(record, "x")
    assert isinstance(s, DjangoScope) and s.using == "other"
    assert CALLED == ["record"] and labels() == ["x"]


def test_unknown_key_at_startup_raises_improperly_configured_listing_valid_keys(settings: Any) -> None:
    settings.AIRLOCK = {"POLICY": "airlock.AllowAll", "EXECTUOR": None}
    with pytest.raises(ImproperlyConfigured, match="unknown key.*'EXECTUOR'.*" + VALID):
        apps.get_app_config("airlock").ready()
    with pytest.raises(ImproperlyConfigured, match=VALID):
        configure_from_settings()


def test_get_setting_refuses_a_name_that_is_not_a_key() -> None:
    with pytest.raises(ValueError, match="'POLICIES'.*valid keys are: POLICY, EXECUTOR"):
        get_setting("POLICIES")


class PickyScope(airlock.Scope):
    """A custom scope that validates its own keyword argument (keyword-only, no default)."""

    def __init__(self, *, level: int, **kwargs: Any) -> None:
        if not isinstance(level, int):
            raise TypeError(f"level must be an int, got {level!r}")
        super().__init__(**kwargs)


@pytest.mark.parametrize(
    ("airlock_setting", "check_id", "message", "hint"),
    [
        ({"EXECTUOR": None}, "airlock.E001", "unknown key(s): 'EXECTUOR'", VALID),
        ("airlock.DropAll", "airlock.E001", "must be a dict, got str", "keys among: POLICY"),
        (
            {"POLICY": "airlock.NoSuchPolicy"},
            "airlock.E002",
            "'airlock.NoSuchPolicy' cannot be imported",
            "dotted path",
        ),
        ({"POLICY": "airlock.enqueue"}, "airlock.E002", "could not be instantiated", "policy class"),
        ({"POLICY": 42}, "airlock.E002", "is not a policy", "on_enqueue(intent) and allows(intent)"),
        (
            {"POLICY": f"{__name__}.make_not_a_policy"},
            "airlock.E002",
            "is not a policy (got 42)",
            "allows(intent)",
        ),
        ({"EXECUTOR": "no.such.module.executor"}, "airlock.E003", "cannot be imported", "dotted path"),
        ({"EXECUTOR": "airlock.DropAll"}, "airlock.E003", "is not an executor", "function taking an Intent"),
        (
            {"SCOPE": f"{__name__}.NotAScope"},
            "airlock.E004",
            "is not a subclass of airlock.Scope",
            "DjangoScope",
        ),
        (
            {"SCOPE_KWARGS": {"using": "nope"}},
            "airlock.E005",
            "'nope' is not a database alias",
            "default, other",
        ),
        (
            {"SCOPE_KWARGS": {"colour": "red"}},
            "airlock.E005",
            "does not build a DjangoScope",
            "keyword arguments",
        ),
        # Every value that would fail when a request builds its scope fails here, naming SCOPE_KWARGS.
        ({"SCOPE_KWARGS": {"using": 5}}, "airlock.E005", "SCOPE_KWARGS']['using'] = 5", "DATABASES defines"),
        (
            {"SCOPE_KWARGS": {"policy": "airlock.AllowAll"}},
            "airlock.E005",
            "SCOPE_KWARGS'] = {'policy'",
            "accepts",
        ),
        ({"SCOPE_KWARGS": {"executor": 42}}, "airlock.E005", "SCOPE_KWARGS'] = {'executor': 42}", "accepts"),
        (
            {"SCOPE": f"{__name__}.PickyScope", "SCOPE_KWARGS": {"level": "high"}},
            "airlock.E005",
            "level must be an int",
            "accepts",
        ),
        ({"SCOPE": f"{__name__}.PickyScope"}, "airlock.E005", "does not build a PickyScope", "accepts"),
        ({"SCOPE_KWARGS": ["using"]}, "airlock.E005", "must be a dict", "'using'"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("airlock.E") else None,
)
def test_misconfiguration_is_reported_by_manage_py_check(
    settings: Any, airlock_setting: object, check_id: str, message: str, hint: str
) -> None:
    settings.AIRLOCK = airlock_setting
    report = run_checks()
    line = next(line for line in report.splitlines() if check_id in line)
    assert message in line
    hint_line = report.splitlines()[report.splitlines().index(line) + 1]
    assert "HINT:" in hint_line and hint in hint_line


def test_a_sound_setting_passes_the_checks(settings: Any) -> None:
    settings.AIRLOCK = {
        "POLICY": "airlock.LogOnFlush",
        "EXECUTOR": None,
        "SCOPE_KWARGS": {"using": "default"},
    }
    out = io.StringIO()
    call_command("check", stdout=out)
    assert "no issues" in out.getvalue()


def test_in_process_executor_with_a_task_queue_installed_is_a_warning(settings: Any) -> None:
    settings.SILENCED_SYSTEM_CHECKS = [c for c in settings.SILENCED_SYSTEM_CHECKS if c != "airlock.W001"]
    settings.AIRLOCK = {}
    out, err = io.StringIO(), io.StringIO()
    call_command("check", stdout=out, stderr=err)  # a warning does not fail the check
    report = out.getvalue() + err.getvalue()
    assert "?: (airlock.W001) airlock runs every task in-process" in report
    assert "celery" in report  # installed in the test environment
    assert (
        "HINT: Set AIRLOCK = {'EXECUTOR': 'airlock.integrations.executors.celery.celery_executor'}" in report
    )
    # Naming the in-process executor explicitly is the same choice: still a warning.
    settings.AIRLOCK = {"EXECUTOR": "airlock.integrations.executors.sync.sync_executor"}
    out = io.StringIO()
    call_command("check", stdout=out, stderr=out)
    assert "airlock.W001" in out.getvalue()


def test_no_warning_with_a_queue_executor_or_when_silenced(settings: Any) -> None:
    settings.SILENCED_SYSTEM_CHECKS = [c for c in settings.SILENCED_SYSTEM_CHECKS if c != "airlock.W001"]
    settings.AIRLOCK = {"EXECUTOR": "airlock.integrations.executors.celery.celery_executor"}
    out = io.StringIO()
    call_command("check", stdout=out, stderr=out)
    assert "no issues" in out.getvalue()
    settings.AIRLOCK = {}
    settings.SILENCED_SYSTEM_CHECKS = [*settings.SILENCED_SYSTEM_CHECKS, "airlock.W001"]
    out = io.StringIO()
    call_command("check", stdout=out, stderr=out)
    assert "no issues" in out.getvalue() and "W001" not in out.getvalue()


def test_no_warning_when_no_task_queue_is_installed(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airlock.integrations.django import checks

    settings.SILENCED_SYSTEM_CHECKS = [c for c in settings.SILENCED_SYSTEM_CHECKS if c != "airlock.W001"]
    settings.AIRLOCK = {}
    monkeypatch.setattr(checks, "TASK_QUEUES", {"airlock_no_such_queue": "x.y"})
    assert checks.check_in_process_executor() == []
    monkeypatch.setattr(
        checks, "TASK_QUEUES", {"airlock_no_such_queue": "x.y", "celery": "x.celery_executor"}
    )
    assert [w.id for w in checks.check_in_process_executor()] == ["airlock.W001"]


def test_broken_setting_fails_closed_every_enqueue_raises_nothing_dispatches(
    settings: Any, ran: list[tuple[str, bool]]
) -> None:
    settings.AIRLOCK = {"POLICY": "airlock.NoSuchPolicy"}
    policy = airlock.get_configuration()["policy"]
    assert repr(policy) == "<airlock misconfigured: airlock.E002>"
    with pytest.raises(ImproperlyConfigured, match=r"airlock.E002.*NoSuchPolicy"):
        with airlock.scope():
            airlock.enqueue(record, "x")
    # Naming a policy at the call site changes nothing: the executor the
    # settings did not choose is refused too, at the enqueue line.
    with pytest.raises(ImproperlyConfigured, match=r"airlock.E002.*NoSuchPolicy"):
        with airlock.scope(policy=airlock.AllowAll()):
            airlock.enqueue(record, "y")
    executor = airlock.get_configuration()["executor"]
    with pytest.raises(ImproperlyConfigured, match=r"airlock.E002"):
        executor(airlock.Intent(record, ("z",)))
    assert ran == []


@pytest.mark.django_db(transaction=True)
def test_management_command_runs_effects_after_its_commit(ran: list[tuple[str, bool]]) -> None:
    out = io.StringIO()
    call_command("place_order", "A1", stdout=out)
    assert ran == [("email A1", False), ("warehouse A1", False)]
    assert out.getvalue() == ""


@pytest.mark.django_db(transaction=True)
def test_management_command_dry_run_runs_nothing_and_lists_intents(ran: list[tuple[str, bool]]) -> None:
    out = io.StringIO()
    call_command("place_order", "B2", "--dry-run", stdout=out)
    assert ran == []
    assert out.getvalue().splitlines() == [
        "would run: record('email B2')",
        "would run: record('warehouse B2')",
    ]
