"""airlock: express side effects anywhere; control whether and when they escape.

Domain code says what should happen with [`enqueue()`][airlock.enqueue]; the unit of work that
owns it (a request, a task, a command, a test) opens a [`scope()`][airlock.scope] and decides
when and whether those effects escape.
"""

from ._context import _check_greenlet, carry_context, get_current_scope, policy
from ._dispatch import execute as _execute
from ._enqueue import enqueue
from ._errors import (
    AirlockError,
    DispatchError,
    NoScopeError,
    PolicyEnqueueError,
    PolicyViolation,
    ScopeStateError,
    UsageError,
)
from ._intent import Intent
from ._observe import DispatchEvent, Observer, ScopeEndEvent, add_observer, remove_observer
from ._policies import AllowAll, AssertNoEffects, BlockTasks, CoalesceDuplicates, DropAll, LogOnFlush
from ._protocols import Executor, Policy, PolicyProtocol
from ._scope import Scope, configure, get_configuration, reset_configuration, scope, scoped

__all__ = [
    "AirlockError",
    "AllowAll",
    "AssertNoEffects",
    "BlockTasks",
    "CoalesceDuplicates",
    "DispatchError",
    "DispatchEvent",
    "DropAll",
    "Executor",
    "Intent",
    "LogOnFlush",
    "Observer",
    "NoScopeError",
    "Policy",
    "PolicyEnqueueError",
    "PolicyProtocol",
    "PolicyViolation",
    "Scope",
    "ScopeEndEvent",
    "ScopeStateError",
    "UsageError",
    "_execute",
    "add_observer",
    "carry_context",
    "configure",
    "enqueue",
    "get_configuration",
    "get_current_scope",
    "policy",
    "remove_observer",
    "reset_configuration",
    "scope",
    "scoped",
]

__version__ = "0.2.0"

_check_greenlet()
del _check_greenlet
