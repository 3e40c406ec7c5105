"""Where the active scope and the local-policy stack live: ``contextvars``.

Threads, asyncio tasks and greenlets (greenlet >= 1.0) each get their own
context, so concurrent units of work never see each other's scope. A thread
pool does not inherit the submitting context; [`carry_context()`][airlock.carry_context] hands it
over explicitly.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import warnings
from collections.abc import Callable
from contextvars import ContextVar, copy_context
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ._errors import PolicyEnqueueError
from ._policies import check_policy
from ._protocols import Policy as PolicyProtocol

if TYPE_CHECKING:
    from ._intent import Intent
    from ._scope import Scope

__all__ = ["carry_context", "get_current_scope", "policy"]

P = ParamSpec("P")
R = TypeVar("R")


class _Judging:
    """Stands in for the current scope while a policy callback runs.

    ``enqueue`` refuses to add to a scope whose state is past "exited"; this
    object's state always is, and its refusal names the real problem.
    Detecting "enqueue from a policy" therefore costs the hot path nothing.
    """

    __slots__ = ("scope",)
    _state = 99  # beyond every real state: ``enqueue`` takes its refusal path
    _awaits = False
    _last_task = object()  # never a task: enqueue always checks, and refuses
    _origin = None
    _shared_meta = None

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def _refuse(self, intent: Intent) -> None:
        raise PolicyEnqueueError(
            f"enqueue({intent.name}) was called from inside a policy callback "
            "(on_enqueue or allows); policies judge intents, they never create them"
        )


#: The innermost active scope of this context (or a ``_Judging`` guard).
current: ContextVar[Scope | _Judging | None] = ContextVar("airlock.scope", default=None)
#: ``airlock.policy()`` layers in force, outermost first.
local_policies: ContextVar[tuple[PolicyProtocol, ...]] = ContextVar("airlock.local_policies", default=())


def get_current_scope() -> Scope | None:
    """The innermost active scope of the calling context, or ``None``."""
    scope = current.get()
    if isinstance(scope, _Judging):
        return scope.scope
    return scope


class policy:  # noqa: N801 - used like a function: ``with airlock.policy(p):``
    """Layer a local policy over everything enqueued inside the block.

    Works with ``with`` and ``async with``, in whatever scope is active: the
    intents record the policy stack at enqueue time, so the policy judges them
    at enqueue (``on_enqueue``) and at flush (``allows``) even after the block
    has ended.
    """

    __slots__ = ("_policy", "_token")

    def __init__(self, policy: PolicyProtocol) -> None:
        check_policy(policy, "airlock.policy()")
        self._policy = policy
        self._token: Any = None

    def __enter__(self) -> PolicyProtocol:
        self._token = local_policies.set((*local_policies.get(), self._policy))
        return self._policy

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        local_policies.reset(self._token)

    async def __aenter__(self) -> PolicyProtocol:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def carry_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` so that it runs in (a copy of) the caller's context.

    Thread pools start every job in an empty context, so enqueues made there
    find no scope. Wrap the job when submitting it to keep the caller's scope
    and local policies:

        with airlock.scope():
            pool.submit(airlock.carry_context(work), item)

    Each call runs in its own copy of the context captured here, so one wrapped
    function can run in several threads at once; intents still land in the
    captured scope.
    """
    captured = copy_context()

    @functools.wraps(fn)
    def run_in_captured_context(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(fn, *args, **kwargs)

    return run_in_captured_context


def _check_greenlet() -> None:
    """Warn if the greenlet present is older than 1.0.

    greenlet < 1.0 shares one contextvars context between all greenlets of a
    thread, which would let concurrent greenlets see each other's scope. Kept
    cheap for the import of airlock: an imported greenlet tells its version;
    otherwise the import system's own (cached) lookup tells whether greenlet
    is installed and in which form. greenlet >= 1.0 is a package; the 0.x
    releases were one extension module.
    """
    module = sys.modules.get("greenlet")
    if module is not None:
        raw = getattr(module, "__version__", None)
        try:
            old = raw is not None and int(str(raw).split(".", 1)[0]) < 1
        except ValueError:
            return
        found = f"greenlet {raw}"
    else:
        try:
            spec = importlib.util.find_spec("greenlet")
        except (ImportError, ValueError):
            return
        old = spec is not None and spec.submodule_search_locations is None
        found = f"greenlet < 1.0 ({spec.origin if spec is not None else '?'})"
    if old:
        warnings.warn(
            f"{found} is installed; airlock needs greenlet >= 1.0 so that each "
            "greenlet has its own contextvars context. With this version, concurrent "
            "greenlets can see each other's airlock scope.",
            RuntimeWarning,
            stacklevel=2,
        )
