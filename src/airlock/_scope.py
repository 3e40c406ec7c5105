"""The scope API: ``scope()``, ``scoped()``, ``build_scope()`` and configuration.

`build_scope()` is the one place that turns "a scope for this unit of work"
into a scope object, with the configured class, policy, executor and keyword
arguments. ``airlock.scope()``, ``@airlock.scoped`` and every integration
(middlewares, task wrappers) call it, so a custom scope class configured with
``configure(scope_cls=...)`` is built the same way everywhere: with keyword
arguments only, and never one its ``__init__`` does not accept.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ParamSpec, TypedDict, TypeVar, overload

from . import _config
from ._intent import Intent, is_coroutine_task
from ._lifecycle import Scope
from ._policies import check_policy
from ._protocols import Policy

__all__ = [
    "Configuration",
    "Scope",
    "build_scope",
    "configure",
    "get_configuration",
    "reset_configuration",
    "scope",
    "scoped",
]

P = ParamSpec("P")
R = TypeVar("R")

#: Compatibility name for integrations; prefer `airlock._intent.is_coroutine_task()`.
_is_coroutine_callable = is_coroutine_task


# -- configuration ------------------------------------------------------------


class Configuration(TypedDict):
    """What [`get_configuration()`][airlock.get_configuration] returns; ``None`` where nothing was configured."""

    scope_cls: type[Scope] | None
    policy: Policy | None
    executor: Callable[[Intent], Any] | None
    scope_kwargs: dict[str, Any] | None


def configure(
    *,
    scope_cls: type[Scope] | None = None,
    policy: Policy | None = None,
    executor: Callable[[Intent], Any] | None = None,
    scope_kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Set the defaults that ``scope()``, ``scoped()``, integrations and ``Scope()`` use.

    A ``None`` argument leaves that default as it is; explicit arguments to a
    scope always win. ``scope_kwargs`` replaces the previous keyword defaults,
    applies to scopes of the configured class (or its subclasses), and must be
    arguments that class accepts (checked here, not at the first request).
    """
    if scope_cls is not None and not (isinstance(scope_cls, type) and issubclass(scope_cls, Scope)):
        raise TypeError(f"configure(scope_cls=...) needs a subclass of airlock.Scope, got {scope_cls!r}")
    if policy is not None:
        check_policy(policy, "configure(policy=...)")
    if executor is not None and not callable(executor):
        raise TypeError(f"configure(executor=...) needs a callable taking an Intent, got {executor!r}")
    if scope_kwargs is not None and not isinstance(scope_kwargs, Mapping):
        raise TypeError(f"configure(scope_kwargs=...) needs a mapping, got {scope_kwargs!r}")
    with _config.lock:
        old = _config._snapshot
        cls = scope_cls if scope_cls is not None else old.scope_cls
        kwargs = scope_kwargs if scope_kwargs is not None else old.scope_kwargs
        if kwargs:
            _check_scope_kwargs(cls or Scope, kwargs)
        _config.replace(
            _config.Snapshot(
                cls,
                policy if policy is not None else old.policy,
                executor if executor is not None else old.executor,
                MappingProxyType(dict(scope_kwargs)) if scope_kwargs is not None else old.scope_kwargs,
            )
        )


def get_configuration() -> Configuration:
    """A copy of what was configured: ``scope_cls``, ``policy``, ``executor``, ``scope_kwargs``.

    Each is ``None`` until configured (and after [`reset_configuration()`][airlock.reset_configuration]);
    scopes then use the built-in defaults: ``airlock.Scope``, ``AllowAll()``,
    the in-process executor ``airlock._execute``, no keyword arguments.
    """
    snap = _config._snapshot
    return Configuration(
        scope_cls=snap.scope_cls,
        policy=snap.policy,
        executor=snap.executor,
        scope_kwargs=dict(snap.scope_kwargs) if snap.scope_kwargs is not None else None,
    )


def reset_configuration() -> None:
    """Forget everything [`configure()`][airlock.configure] set: back to the built-in defaults."""
    with _config.lock:
        _config.replace(_config.Snapshot())


def _check_scope_kwargs(cls: type[Scope], kwargs: Mapping[str, Any]) -> None:
    bad = [key for key in kwargs if not isinstance(key, str)]
    if bad:
        raise TypeError(f"configure(scope_kwargs=...) keys must be str, got {bad[0]!r}")
    try:
        inspect.signature(cls).bind_partial(**kwargs)
    except TypeError as exc:
        raise TypeError(f"configure(scope_kwargs=...) does not fit {cls.__name__}(): {exc}") from None


# -- building scopes ----------------------------------------------------------

# Which keywords a scope class's __init__ accepts (None: any, it takes **kwargs).
# Weakly keyed by class and checked against the class's current __init__, so
# it neither keeps a class alive nor outlives a changed signature.
_accepted: weakref.WeakKeyDictionary[type, tuple[Any, frozenset[str] | None]] = weakref.WeakKeyDictionary()


def _accepts(cls: type[Scope], name: str) -> bool:
    init = cls.__init__
    entry = _accepted.get(cls)
    if entry is None or entry[0]() is not init:
        names: frozenset[str] | None
        try:
            params = inspect.signature(cls).parameters.values()
        except (TypeError, ValueError):  # pragma: no cover - builtin-like __init__
            names = None
        else:
            if any(p.kind is p.VAR_KEYWORD for p in params):
                names = None
            else:
                names = frozenset(
                    p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                )
        try:
            ref: Any = weakref.ref(init)
        except TypeError:  # pragma: no cover - an __init__ that cannot be weakly referenced
            ref = lambda: None  # noqa: E731 - never matches: looked up again next time
        _accepted[cls] = entry = (ref, names)
    return entry[1] is None or name in entry[1]


def build_scope(
    cls: type[Scope] | None = None,
    policy: Policy | None = None,
    *,
    executor: Callable[[Intent], Any] | None = None,
    origin: str | None = None,
    **kwargs: Any,
) -> Scope:
    """A new (not yet entered) scope for a unit of work, as configured.

    The function integrations call to build their request/task scopes.
    ``cls`` defaults to the configured scope class; ``policy`` and
    ``executor`` to the configured ones (passed only when given or
    configured); the configured ``scope_kwargs`` apply when the class is the
    configured one or a subclass; explicit ``kwargs`` win. Everything is
    passed by keyword. ``origin`` (a request path, a task name) is passed when
    the class accepts it and set on the scope otherwise.
    """
    config = _config._snapshot
    configured_cls = config.scope_cls or Scope
    if cls is None:
        cls = configured_cls
    elif not (isinstance(cls, type) and issubclass(cls, Scope)):
        raise TypeError(f"a scope class must be a subclass of airlock.Scope, got {cls!r}")
    if policy is not None:
        check_policy(policy, f"{cls.__name__}(policy=...)")
    defaults = config.scope_kwargs
    if defaults and issubclass(cls, configured_cls):
        kwargs = {**defaults, **kwargs}
    if cls is Scope:
        # The base class reads the configured policy and executor itself.
        if executor is not None:
            kwargs["executor"] = executor
        if origin is not None:
            kwargs.setdefault("origin", origin)
        return Scope(policy, **kwargs) if kwargs else Scope(policy)
    if policy is None:
        policy = config.policy
    if policy is not None and "policy" not in kwargs and _accepts(cls, "policy"):
        kwargs["policy"] = policy
    if executor is None:
        executor = config.executor
    if executor is not None and "executor" not in kwargs and _accepts(cls, "executor"):
        kwargs["executor"] = executor
    set_origin = False
    if origin is not None and "origin" not in kwargs:
        if _accepts(cls, "origin"):
            kwargs["origin"] = origin
        else:
            set_origin = True
    built = cls(**kwargs)
    if set_origin and built._origin is None:
        if not isinstance(origin, str):
            raise TypeError(f"origin must be a str, got {origin!r}")
        built._origin = origin
    return built


def scope(policy: Policy | None = None, *, _cls: type[Scope] | None = None, **scope_kwargs: Any) -> Scope:
    """A new scope, used as ``with airlock.scope() as s:`` or ``async with``.

    Arguments left out come from [`airlock.configure()`][airlock.configure]: the scope class,
    the policy, the executor, and the scope keyword arguments (the configured
    ones apply to the configured class and its subclasses; explicit ones win).
    """
    if _cls is None and policy is None and not scope_kwargs:
        config = _config._snapshot
        cls = config.scope_cls
        if (cls is None or cls is Scope) and not config.scope_kwargs:
            return Scope()  # the common case, kept short
    return build_scope(_cls, policy, **scope_kwargs)


# -- the decorator ------------------------------------------------------------


@overload
def scoped(func: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def scoped(
    policy: Policy | None = None, /, *, _cls: type[Scope] | None = None, **scope_kwargs: Any
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def scoped(*args: Any, **kwargs: Any) -> Any:
    """Run each call of the decorated function in a fresh scope.

    Works on plain and ``async def`` functions, spelled ``@airlock.scoped`` or
    ``@airlock.scoped(policy, _cls=..., **scope_kwargs)`` with the arguments of
    [`scope()`][airlock.scope]. Generator and async-generator functions are refused (a
    scope around the call would close before the body runs); open
    ``with airlock.scope():`` inside the generator instead. Apply it below
    ``@classmethod`` / ``@staticmethod``, on the function itself.
    """
    if len(args) == 1 and not kwargs and _is_decoratable(args[0]):
        return _decorate(args[0], None, None, {})
    if len(args) > 1:
        raise TypeError("scoped() takes at most one positional argument (the policy)")
    if args and "policy" in kwargs:
        raise TypeError("scoped() got the policy both positionally and as policy=")
    policy = args[0] if args else kwargs.pop("policy", None)
    if isinstance(policy, (classmethod, staticmethod)):
        _decorate(policy, None, None, {})  # type: ignore[arg-type]  # raises the TypeError that explains it
    if policy is not None:
        check_policy(policy, "@airlock.scoped(policy)")
    cls = kwargs.pop("_cls", None)

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        return _decorate(func, policy, cls, kwargs)

    return decorator


def _is_decoratable(obj: object) -> bool:
    # ``@scoped`` without parentheses receives the function; ``@scoped(p)``
    # receives a policy. Policies have on_enqueue/allows, functions do not.
    if isinstance(obj, (classmethod, staticmethod)):
        return True
    return callable(obj) and not isinstance(obj, type) and not hasattr(obj, "allows")


def _decorate(
    func: Callable[..., Any], policy: Policy | None, cls: type[Scope] | None, kwargs: dict[str, Any]
) -> Callable[..., Any]:
    if isinstance(func, (classmethod, staticmethod)):
        kind = type(func).__name__
        raise TypeError(
            f"@airlock.scoped was applied over a {kind} object; put it below @{kind}, "
            "directly on the function"
        )
    if not callable(func):
        raise TypeError(f"@airlock.scoped decorates a function, got {func!r}")
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(
            f"@airlock.scoped cannot wrap the generator function {getattr(func, '__qualname__', func)!r}: "
            "its body runs after the call returns, outside the scope; "
            "open 'with airlock.scope():' inside the generator instead"
        )
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async_in_scope(*a: Any, **kw: Any) -> Any:
            async with scope(policy, _cls=cls, **kwargs):
                return await func(*a, **kw)

        return run_async_in_scope

    @functools.wraps(func)
    def run_in_scope(*a: Any, **kw: Any) -> Any:
        with scope(policy, _cls=cls, **kwargs):
            return func(*a, **kw)

    return run_in_scope
