"""Process-wide defaults for scopes: plain state, nothing else.

What [`airlock.configure()`][airlock.configure] set is one immutable snapshot, swapped in a
single assignment, so any number of threads read it while another thread
reconfigures. ``None`` means "never configured": the scope class then falls
back to its built-in defaults. ``configure()`` and friends (which validate
their arguments against the scope class) live in `airlock._scope`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

# Compatibility location: the pytest plugin imports the check from here.
from ._policies import check_policy as _check_policy  # noqa: F401

if TYPE_CHECKING:
    from ._intent import Intent
    from ._lifecycle import Scope
    from ._protocols import Policy

__all__ = ["Snapshot", "_check_policy", "current", "lock", "replace"]


class Snapshot:
    """One configuration; read on every scope creation, so slotted."""

    __slots__ = ("scope_cls", "policy", "executor", "scope_kwargs")

    def __init__(
        self,
        scope_cls: type[Scope] | None = None,
        policy: Policy | None = None,
        executor: Callable[[Intent], Any] | None = None,
        scope_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.scope_cls = scope_cls
        self.policy = policy
        self.executor = executor
        self.scope_kwargs = scope_kwargs


#: Serialises writers; readers take ``_snapshot`` as it is.
lock = threading.Lock()
_snapshot = Snapshot()


def current() -> Snapshot:
    """The configuration in force."""
    return _snapshot


def replace(snapshot: Snapshot) -> None:
    """Put ``snapshot`` in force (callers hold `lock`)."""
    global _snapshot
    _snapshot = snapshot
