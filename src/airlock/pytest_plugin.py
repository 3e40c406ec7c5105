"""The airlock pytest plugin, registered through the ``pytest11`` entry point.

It gives tests three ways to put their side effects under control:

* the ``airlock_scope`` fixture: the test runs inside an ``airlock.scope()``
  with a ``DropAll`` policy and receives that scope, so it can look at what
  was enqueued (``airlock_scope.intents``) while nothing escapes;
* the ``@pytest.mark.airlock(policy=...)`` marker: the test runs inside a
  scope with that policy (``policy=None`` opts the test out of any scope);
* the ``--airlock-policy`` option (declared by the ``pytest_airlock`` entry
  point module, which registers this module when pytest configures) / ``airlock_policy`` ini setting: every test
  that neither uses the fixture nor carries the marker runs under that policy
  (``assert-no-effects``, ``drop-all``, ``allow-all``, ``none`` or a dotted path to a
  policy class, factory or instance).

The scope is an ordinary ``airlock.scope()``, so the configured scope class is
used (``DjangoScope`` once the Django integration has configured airlock), and
it is entered after pytest-django has opened the test's database transaction.
When a test fails, its report gains a "Captured airlock intents" section
listing what was enqueued.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable, Coroutine, Generator, Iterator
from typing import Any

import pytest

from ._config import _check_policy
from ._policies import AllowAll, AssertNoEffects, DropAll, PolicyProtocol
from ._scope import Scope, scope
from .testing import describe_intents

__all__ = ["airlock_scope", "resolve_policy"]

PolicyFactory = Callable[[], PolicyProtocol]

#: Names accepted by the option, the ini setting and the marker.
NAMED_POLICIES: dict[str, PolicyFactory] = {
    "drop-all": DropAll,
    "assert-no-effects": AssertNoEffects,
    "allow-all": AllowAll,
}
_OFF = ("", "none", "off")

_factory_key = pytest.StashKey[PolicyFactory | None]()
_scope_key = pytest.StashKey[Scope]()
_failed_key = pytest.StashKey[bool]()

# pytest-django's fixtures that open the test's database (transaction); when a
# test uses one, the airlock scope is entered after it.
_DJANGO_DB_FIXTURES = (
    "_django_db_marker",
    "db",
    "transactional_db",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
)


def resolve_policy(spec: object, where: str) -> PolicyFactory:
    """Turn a policy spec into a factory that makes the policy for one test.

    ``spec`` is a policy instance, one of the names in :data:`NAMED_POLICIES`,
    or a dotted path (``pkg.module.Name`` or ``pkg.module:Name``) to a policy
    class, a zero-argument factory, or a policy instance.
    """
    if isinstance(spec, str):
        if spec in NAMED_POLICIES:
            return NAMED_POLICIES[spec]
        return _import_policy(spec, where)
    if isinstance(spec, type):
        raise TypeError(
            f"{where} needs a policy instance, got the class {spec.__name__}; write {spec.__name__}()"
        )
    _check_policy(spec, where)
    policy: PolicyProtocol = spec  # type: ignore[assignment]
    return lambda: policy


def _import_policy(path: str, where: str) -> PolicyFactory:
    module_name, sep, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not sep or not module_name or not attr:
        raise ValueError(
            f"{where}: {path!r} is neither one of {', '.join(NAMED_POLICIES)} nor a dotted path "
            "to a policy (e.g. myproject.testing.StrictPolicy)"
        )
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"{where}: cannot import the policy {path!r}: {error}") from error
    if isinstance(target, type) or not (hasattr(target, "on_enqueue") and hasattr(target, "allows")):
        if not callable(target):
            raise TypeError(f"{where}: {path!r} is {target!r}, not a policy, policy class or factory")

        def make() -> PolicyProtocol:
            policy = target()
            _check_policy(policy, f"{where} ({path!r} returned it)")
            return policy  # type: ignore[no-any-return]

        make()  # fail now, at start-up, rather than in every test
        return make
    _check_policy(target, where)
    instance: PolicyProtocol = target
    return lambda: instance


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "airlock(policy=DropAll(), **scope_kwargs): run the test inside an airlock scope with this "
        "policy (an instance, a name such as 'assert-no-effects', or a dotted path); policy=None "
        "runs it without one",
    )
    spec = config.getoption("airlock_policy")
    if spec is None:
        spec = config.getini("airlock_policy")
    spec = str(spec).strip()
    if spec.lower() in _OFF:
        config.stash[_factory_key] = None
        return
    try:
        config.stash[_factory_key] = resolve_policy(spec, "--airlock-policy / airlock_policy")
    except (TypeError, ValueError) as error:
        raise pytest.UsageError(str(error)) from error


_NO_MARKER = object()


def _marker_settings(item: pytest.Item) -> tuple[object, dict[str, Any]] | None:
    """(policy spec or None, scope kwargs) from the closest ``airlock`` marker."""
    marker = item.get_closest_marker("airlock")
    if marker is None:
        return None
    kwargs = dict(marker.kwargs)
    if len(marker.args) > 1:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.airlock takes at most one positional argument (the policy)")
    if marker.args:
        if "policy" in kwargs:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.airlock got the policy twice")
        spec: object = marker.args[0]
    else:
        spec = kwargs.pop("policy", _NO_MARKER)
    if spec is _NO_MARKER:
        spec = "drop-all"
    return spec, kwargs


def _marker_factory(item: pytest.Item, spec: object) -> PolicyFactory:
    try:
        return resolve_policy(spec, f"{item.nodeid}: @pytest.mark.airlock(policy=...)")
    except (TypeError, ValueError) as error:
        raise pytest.UsageError(str(error)) from error


def _drive(coro: Coroutine[Any, Any, Scope]) -> Scope:
    # ``Scope.aenter`` does not suspend: run it in *this* context (asyncio.run
    # would run it in a copy, and the active scope would not reach the test).
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("airlock: the scope's aenter() suspended; use 'async with airlock.scope()' in the test")


def _run_scope(
    request: pytest.FixtureRequest, factory: PolicyFactory, scope_kwargs: dict[str, Any]
) -> Iterator[Scope]:
    item = request.node
    for name in _DJANGO_DB_FIXTURES:
        if name in request.fixturenames:
            request.getfixturevalue(name)
    is_async = inspect.iscoroutinefunction(getattr(request, "function", None))
    test_scope = scope(factory(), **scope_kwargs)
    # An async test may enqueue coroutine tasks, which only a scope entered
    # for asynchronous flushing accepts.
    if is_async:
        _drive(test_scope.aenter())
    else:
        test_scope.enter()
    item.stash[_scope_key] = test_scope
    try:
        yield test_scope
    finally:
        test_scope.exit()
        failed = item.stash.get(_failed_key, False)
        if failed or not test_scope.should_flush(None):
            test_scope.discard()
        elif is_async:
            asyncio.run(test_scope.aflush())
        else:
            test_scope.flush()


@pytest.fixture
def airlock_scope(request: pytest.FixtureRequest) -> Generator[Scope, None, None]:
    """Run the test inside an airlock scope that dispatches nothing; yield it.

    The policy is ``DropAll()`` unless the test's ``@pytest.mark.airlock``
    marker names another; inspect ``airlock_scope.intents`` or use
    ``airlock.testing.assert_enqueued(airlock_scope, task, ...)``.
    """
    settings = _marker_settings(request.node)
    factory: PolicyFactory = DropAll
    kwargs: dict[str, Any] = {}
    if settings is not None:
        spec, kwargs = settings
        if spec is None:
            raise pytest.UsageError(
                f"{request.node.nodeid} uses the airlock_scope fixture but its airlock marker says "
                "policy=None (no scope); remove one of them"
            )
        factory = _marker_factory(request.node, spec)
    yield from _run_scope(request, factory, kwargs)


@pytest.fixture(autouse=True)
def _airlock_policy_scope(request: pytest.FixtureRequest) -> Generator[None, None, None]:
    """The scope demanded by the marker or by ``--airlock-policy`` (if any)."""
    if "airlock_scope" in request.fixturenames:
        yield  # the fixture opens the scope itself
        return
    settings = _marker_settings(request.node)
    if settings is not None:
        spec, kwargs = settings
        if spec is None:
            yield
            return
        factory = _marker_factory(request.node, spec)
    else:
        configured = request.config.stash.get(_factory_key, None)
        if configured is None:
            yield
            return
        factory, kwargs = configured, {}
    for _ in _run_scope(request, factory, kwargs):
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed:
        item.stash[_failed_key] = True
    test_scope = item.stash.get(_scope_key, None)
    if test_scope is not None and report.failed and report.when in ("call", "setup"):
        report.sections.append(
            (
                "Captured airlock intents",
                f"{test_scope!r} held {len(test_scope.intents)} intent(s):\n"
                + describe_intents(test_scope.intents),
            )
        )
    return report
