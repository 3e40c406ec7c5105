"""The ``AIRLOCK`` setting: its keys, how each one is read, and what is wrong with it.

Everything that interprets ``settings.AIRLOCK`` lives here, so the app's
startup (`.apps`), the system checks (`.checks`) and user code
([`get_setting()`][airlock.integrations.django.conf.get_setting], [`get_policy()`][airlock.integrations.django.conf.get_policy], [`get_executor()`][airlock.integrations.django.conf.get_executor]) agree on one
reading of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.utils.module_loading import import_string

import airlock
from airlock import Intent, PolicyProtocol, Scope, _config
from airlock.integrations.executors.sync import sync_executor

__all__ = [
    "SETTING_KEYS",
    "SettingError",
    "configure_from_settings",
    "find_setting_errors",
    "get_executor",
    "get_policy",
    "get_scope_class",
    "get_scope_kwargs",
    "get_setting",
]

#: Every key the ``AIRLOCK`` setting accepts. The one list all readers use:
#: an integration that adds a key (the outbox, say) appends it here.
SETTING_KEYS: tuple[str, ...] = (
    "POLICY",
    "EXECUTOR",
    "SCOPE",
    "SCOPE_KWARGS",
)


class SettingError(ImproperlyConfigured):
    """One problem with the ``AIRLOCK`` setting, with its system-check id and a hint."""

    def __init__(self, check_id: str, msg: str, hint: str) -> None:
        super().__init__(f"{msg} ({hint})")
        self.check_id = check_id
        self.msg = msg
        self.hint = hint


def _raw() -> Mapping[str, Any]:
    value = getattr(settings, "AIRLOCK", None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SettingError(
            "airlock.E001",
            f"settings.AIRLOCK must be a dict, got {type(value).__name__}",
            f"Write AIRLOCK = {{...}} with keys among: {', '.join(SETTING_KEYS)}",
        )
    return value


def _unknown_keys_error(unknown: list[str]) -> SettingError:
    return SettingError(
        "airlock.E001",
        f"settings.AIRLOCK has unknown key(s): {', '.join(map(repr, unknown))}",
        f"Valid keys are: {', '.join(SETTING_KEYS)}",
    )


def get_setting(name: str, default: Any = None) -> Any:
    """The raw value of ``settings.AIRLOCK[name]`` (``default`` when absent).

    ``name`` must be one of `SETTING_KEYS`; a typo raises ``ValueError``
    instead of quietly returning the default.
    """
    if name not in SETTING_KEYS:
        raise ValueError(
            f"get_setting({name!r}): not an AIRLOCK key; valid keys are: {', '.join(SETTING_KEYS)}"
        )
    return _raw().get(name, default)


def _import(path: str, key: str, check_id: str) -> Any:
    try:
        return import_string(path)
    except ImportError as exc:
        raise SettingError(
            check_id,
            f"AIRLOCK[{key!r}] = {path!r} cannot be imported: {exc}",
            "Use a dotted path 'package.module.name' to an object that exists",
        ) from exc


def _is_policy(obj: object) -> bool:
    return (
        not isinstance(obj, type)
        and callable(getattr(obj, "on_enqueue", None))
        and callable(getattr(obj, "allows", None))
    )


def get_policy() -> PolicyProtocol:
    """The policy ``AIRLOCK['POLICY']`` names (default: ``AllowAll()``).

    The value may be a policy instance, a policy class (instantiated with no
    arguments), a zero-argument factory returning a policy, or a dotted path to
    any of those.
    """
    value = get_setting("POLICY")
    if value is None:
        return airlock.AllowAll()
    shown = value
    if isinstance(value, str):
        value = _import(value, "POLICY", "airlock.E002")
    if _is_policy(value):
        return value  # type: ignore[no-any-return]
    if callable(value):
        try:
            made = value()
        except Exception as exc:
            raise SettingError(
                "airlock.E002",
                f"AIRLOCK['POLICY'] = {shown!r} could not be instantiated with no arguments: {exc!r}",
                "Name a policy instance, a policy class that takes no arguments, or a factory",
            ) from exc
        if _is_policy(made):
            return made  # type: ignore[no-any-return]
        value = made
    raise SettingError(
        "airlock.E002",
        f"AIRLOCK['POLICY'] = {shown!r} is not a policy (got {value!r})",
        "A policy has on_enqueue(intent) and allows(intent); e.g. 'airlock.AllowAll' or 'airlock.DropAll'",
    )


def get_executor() -> Callable[[Intent], Any]:
    """The executor ``AIRLOCK['EXECUTOR']`` names (default / ``None``: the sync executor).

    The value is a callable taking an [`Intent`][airlock.Intent], or a dotted
    path to one, e.g. ``'airlock.integrations.executors.celery.celery_executor'``.
    """
    value = get_setting("EXECUTOR")
    if value is None:
        return sync_executor
    shown = value
    if isinstance(value, str):
        value = _import(value, "EXECUTOR", "airlock.E003")
    if isinstance(value, type) or not callable(value):
        raise SettingError(
            "airlock.E003",
            f"AIRLOCK['EXECUTOR'] = {shown!r} is not an executor (got {value!r})",
            "An executor is a function taking an Intent, e.g. "
            "'airlock.integrations.executors.sync.sync_executor'",
        )
    return value  # type: ignore[no-any-return]


def get_scope_class() -> type[Scope]:
    """The scope class ``AIRLOCK['SCOPE']`` names (default: [`DjangoScope`][airlock.integrations.django.DjangoScope])."""
    from .scope import DjangoScope

    value = get_setting("SCOPE")
    if value is None:
        return DjangoScope
    shown = value
    if isinstance(value, str):
        value = _import(value, "SCOPE", "airlock.E004")
    if not (isinstance(value, type) and issubclass(value, Scope)):
        raise SettingError(
            "airlock.E004",
            f"AIRLOCK['SCOPE'] = {shown!r} is not a subclass of airlock.Scope (got {value!r})",
            "Use 'airlock.integrations.django.DjangoScope' or your own subclass of it",
        )
    return value


def get_scope_kwargs() -> dict[str, Any]:
    """The keyword arguments ``AIRLOCK['SCOPE_KWARGS']`` gives every configured scope (default ``{}``)."""
    value = get_setting("SCOPE_KWARGS")
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise SettingError(
            "airlock.E005",
            f"AIRLOCK['SCOPE_KWARGS'] must be a dict of keyword arguments, got {value!r}",
            "e.g. SCOPE_KWARGS = {'using': 'default'}",
        )
    kwargs = dict(value)
    using = kwargs.get("using")
    if using is not None and using not in connections.settings:
        raise SettingError(
            "airlock.E005",
            f"AIRLOCK['SCOPE_KWARGS']['using'] = {using!r} is not a database alias",
            f"DATABASES defines: {', '.join(connections.settings)}",
        )
    return kwargs


def _check_kwargs_fit(scope_cls: type[Scope], kwargs: dict[str, Any]) -> None:
    """Build the scope the way every request will; whatever fails there fails here, naming SCOPE_KWARGS."""
    from airlock._scope import build_scope

    try:
        build_scope(scope_cls, origin="manage.py check", **kwargs)
    except Exception as exc:
        raise SettingError(
            "airlock.E005",
            f"AIRLOCK['SCOPE_KWARGS'] = {kwargs!r} does not build a {scope_cls.__name__}: {exc!r}",
            f"Pass only keyword arguments {scope_cls.__name__}(...) accepts, with values it accepts",
        ) from exc


def find_setting_errors() -> list[SettingError]:
    """Every problem with ``settings.AIRLOCK``, in key order (empty when it is sound)."""
    try:
        raw = _raw()
    except SettingError as exc:
        return [exc]
    errors: list[SettingError] = []
    unknown = [str(k) for k in raw if k not in SETTING_KEYS]
    if unknown:
        errors.append(_unknown_keys_error(unknown))
    for read in (get_policy, get_executor):
        try:
            read()
        except SettingError as exc:
            errors.append(exc)
    scope_cls: type[Scope] | None = None
    kwargs: dict[str, Any] | None = None
    try:
        scope_cls = get_scope_class()
    except SettingError as exc:
        errors.append(exc)
    try:
        kwargs = get_scope_kwargs()
    except SettingError as exc:
        errors.append(exc)
    if scope_cls is not None and kwargs is not None:
        try:
            _check_kwargs_fit(scope_cls, kwargs)
        except SettingError as exc:
            errors.append(exc)
    return errors


class _Misconfigured:
    """The policy AND executor installed when ``AIRLOCK`` is broken: fail closed, loudly.

    Every enqueue raises the configuration error at the enqueue line and
    nothing is ever dispatched, so a process that skipped the system checks
    (a WSGI server) can neither run with defaults the settings did not ask for
    nor lose effects silently. Installed as the executor too (its ``validate``
    runs at every enqueue), so a call site that names its own policy
    (``airlock.scope(policy=AllowAll())``) still cannot run intents through an
    executor the settings did not choose.
    """

    def __init__(self, errors: list[SettingError]) -> None:
        self.errors = errors

    def _error(self) -> ImproperlyConfigured:
        lines = "; ".join(f"{e.check_id}: {e}" for e in self.errors)
        return ImproperlyConfigured(f"airlock is misconfigured, so nothing may be enqueued: {lines}")

    # -- as a policy
    def on_enqueue(self, intent: Intent) -> None:
        raise self._error()

    def allows(self, intent: Intent) -> bool:
        return False

    # -- as an executor
    def validate(self, intent: Intent) -> None:
        raise self._error()

    def __call__(self, intent: Intent) -> None:
        raise self._error()

    def __repr__(self) -> str:
        return f"<airlock misconfigured: {', '.join(e.check_id for e in self.errors)}>"


def executor_when_unconfigured() -> Callable[[Intent], Any] | None:
    """``AIRLOCK['EXECUTOR']`` for a [`DjangoScope`][airlock.integrations.django.DjangoScope] built without an executor while
    nothing configured one (the app is not installed, so it never configured airlock);
    ``None`` otherwise, meaning "the configured one"."""
    if _config._snapshot.executor is not None or not settings.configured:
        return None
    raw = getattr(settings, "AIRLOCK", None)
    if not isinstance(raw, Mapping) or raw.get("EXECUTOR") is None:
        return None
    try:
        return get_executor()
    except SettingError as exc:
        return _Misconfigured([exc])  # fail closed: every enqueue raises the problem


def configure_from_settings(*, strict: bool = True) -> None:
    """Configure airlock from ``settings.AIRLOCK`` (what the app does at startup).

    Unknown keys raise `ImproperlyConfigured`
    listing the valid ones (when ``strict``). Any other problem is left for the
    system checks to report (``airlock.E001``...) and airlock is configured to
    fail closed: every enqueue raises the problem, nothing dispatches, whatever
    policy a call site names.
    """
    errors = find_setting_errors()
    if strict:
        for error in errors:
            if error.check_id == "airlock.E001":
                raise ImproperlyConfigured(str(error))
    if errors:
        from .scope import DjangoScope

        broken = _Misconfigured(errors)
        airlock.configure(scope_cls=DjangoScope, policy=broken, executor=broken, scope_kwargs={})
        return
    airlock.configure(
        scope_cls=get_scope_class(),
        policy=get_policy(),
        executor=get_executor(),
        scope_kwargs=get_scope_kwargs(),
    )
