"""Process-wide defaults for scopes: ``configure`` and friends.

The configuration is an immutable snapshot swapped in one assignment, so any
number of threads can read it while another thread reconfigures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypedDict

from ._policies import AllowAll, PolicyProtocol
from .integrations.executors.sync import sync_executor

if TYPE_CHECKING:
    from ._intent import Intent
    from ._scope import Scope

__all__ = ["Configuration", "configure", "get_configuration", "reset_configuration"]


class Configuration(TypedDict):
    """What :func:`get_configuration` returns."""

    scope_cls: type[Scope]
    policy: PolicyProtocol
    executor: Callable[[Intent], Any]
    scope_kwargs: dict[str, Any]


class _Snapshot:
    """One immutable configuration; read on every scope creation, so slotted."""

    __slots__ = ("scope_cls", "policy", "executor", "scope_kwargs")

    def __init__(
        self,
        scope_cls: type[Scope],
        policy: PolicyProtocol,
        executor: Callable[[Intent], Any],
        scope_kwargs: Mapping[str, Any],
    ) -> None:
        self.scope_cls = scope_cls
        self.policy = policy
        self.executor = executor
        self.scope_kwargs = scope_kwargs


_lock = threading.Lock()
_snapshot: _Snapshot


def _defaults() -> _Snapshot:
    from ._scope import Scope

    return _Snapshot(Scope, AllowAll(), sync_executor, MappingProxyType({}))


def current() -> _Snapshot:
    """The configuration in force (internal, cheap)."""
    return _snapshot


def configure(
    *,
    scope_cls: type[Scope] | None = None,
    policy: PolicyProtocol | None = None,
    executor: Callable[[Intent], Any] | None = None,
    scope_kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Set the defaults that ``scope()``, ``scoped()`` and ``Scope()`` use.

    A ``None`` argument leaves that default as it is; explicit arguments to a
    scope always win. ``scope_kwargs`` replaces the previous keyword defaults
    and applies to scopes of ``scope_cls`` (or its subclasses).
    """
    from ._scope import Scope

    global _snapshot
    if scope_cls is not None and not (isinstance(scope_cls, type) and issubclass(scope_cls, Scope)):
        raise TypeError(f"configure(scope_cls=...) needs a subclass of airlock.Scope, got {scope_cls!r}")
    if policy is not None:
        _check_policy(policy, "configure(policy=...)")
    if executor is not None and not callable(executor):
        raise TypeError(f"configure(executor=...) needs a callable taking an Intent, got {executor!r}")
    if scope_kwargs is not None and not isinstance(scope_kwargs, Mapping):
        raise TypeError(f"configure(scope_kwargs=...) needs a mapping, got {scope_kwargs!r}")
    with _lock:
        old = _snapshot
        _snapshot = _Snapshot(
            scope_cls if scope_cls is not None else old.scope_cls,
            policy if policy is not None else old.policy,
            executor if executor is not None else old.executor,
            MappingProxyType(dict(scope_kwargs)) if scope_kwargs is not None else old.scope_kwargs,
        )


def get_configuration() -> Configuration:
    """A copy of the defaults in force: ``scope_cls``, ``policy``, ``executor``, ``scope_kwargs``."""
    snap = _snapshot
    return Configuration(
        scope_cls=snap.scope_cls,
        policy=snap.policy,
        executor=snap.executor,
        scope_kwargs=dict(snap.scope_kwargs),
    )


def reset_configuration() -> None:
    """Restore the built-in defaults (``Scope``, ``AllowAll()``, sync executor, no kwargs)."""
    global _snapshot
    with _lock:
        _snapshot = _defaults()


def _check_policy(policy: object, where: str) -> None:
    if isinstance(policy, type):
        raise TypeError(f"{where} needs a policy instance, got the class {policy.__name__}; write {policy.__name__}()")
    if not (callable(getattr(policy, "on_enqueue", None)) and callable(getattr(policy, "allows", None))):
        raise TypeError(f"{where} needs a policy (an object with on_enqueue() and allows()), got {policy!r}")
