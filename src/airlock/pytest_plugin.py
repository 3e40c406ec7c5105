"""The airlock pytest plugin, registered through the ``pytest11`` entry point.

It gives tests three ways to put their side effects under control:

* the ``airlock_scope`` fixture: the test runs inside an ``airlock.scope()``
  with a ``DropAll`` policy and receives that scope, so it can look at what
  was enqueued (``airlock_scope.intents``) while nothing escapes;
* the ``@pytest.mark.airlock(policy=...)`` marker: the test runs inside a
  scope with that policy (``policy=None`` opts the test out of any scope);
* the ``--airlock-policy`` option / ``airlock_policy`` ini setting: every test that neither uses the fixture nor
  carries the marker runs under that policy (``assert-no-effects``,
  ``drop-all``, ``allow-all``, ``none`` or a dotted path to a policy class,
  factory or instance).

The scope is an ordinary ``airlock.scope()``, so the configured scope class is
used (``DjangoScope`` once the Django integration has configured airlock), and
it is entered after pytest-django has opened the test's database transaction.
When a test fails, its report gains a "Captured airlock intents" section
listing what was enqueued.

The plugin never passes a test it should fail:

* the scope ends through ``Scope.end()`` (the one end-of-life path; for an
  async test, the same steps with an asynchronous flush) and flushes only when
  the test itself passed: a failed, skipped, xfailed or xpassed test
  dispatches nothing;
* under ``assert-no-effects`` (by name, or an ``AssertNoEffects()`` instance),
  a ``PolicyViolation`` that the code under test caught and swallowed still
  fails the test. A violation the test function handles itself (``with
  pytest.raises(PolicyViolation): ...``) is the test's business and passes.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable, Coroutine, Generator, Iterator
from types import CodeType
from typing import Any, TypeVar

import pytest

from . import AllowAll, AssertNoEffects, DropAll, PolicyProtocol, PolicyViolation, Scope, scope
from .testing import describe_intents

__all__ = ["airlock_scope", "resolve_policy"]

PolicyFactory = Callable[[], PolicyProtocol]


class _GuardedNoEffects(AssertNoEffects):
    """``AssertNoEffects`` for one test: it also remembers every violation it raised.

    So the plugin can fail a test whose code caught the violation and went on
    as if nothing had happened.
    """

    def __init__(self) -> None:
        self.violations: list[PolicyViolation] = []

    def on_enqueue(self, intent: Any) -> None:
        try:
            super().on_enqueue(intent)
        except PolicyViolation as violation:
            self.violations.append(violation)
            raise

    def __repr__(self) -> str:
        return "AssertNoEffects()"


def _guarded(policy: PolicyProtocol) -> PolicyProtocol:
    """The policy a test scope uses for ``policy``: a plain ``AssertNoEffects`` gets a guard."""
    return _GuardedNoEffects() if type(policy) is AssertNoEffects else policy


#: Names accepted by the option, the ini setting and the marker.
NAMED_POLICIES: dict[str, PolicyFactory] = {
    "drop-all": DropAll,
    "assert-no-effects": _GuardedNoEffects,
    "allow-all": AllowAll,
}
_OFF = ("", "none", "off")

_factory_key = pytest.StashKey[PolicyFactory | None]()
_scope_key = pytest.StashKey[Scope]()
_call_key = pytest.StashKey[pytest.TestReport]()
_error_key = pytest.StashKey[BaseException]()
_reported_key = pytest.StashKey[int]()


def _check_policy(policy: object, where: str) -> None:
    if isinstance(policy, type):
        raise TypeError(
            f"{where} needs a policy instance, got the class {policy.__name__}; write {policy.__name__}()"
        )
    if not (callable(getattr(policy, "on_enqueue", None)) and callable(getattr(policy, "allows", None))):
        raise TypeError(f"{where} needs a policy (an object with on_enqueue() and allows()), got {policy!r}")


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

    ``spec`` is a policy instance, one of the names in `NAMED_POLICIES`,
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
    if type(policy) is AssertNoEffects:
        return _GuardedNoEffects
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
            return _guarded(policy)

        make()  # fail now, at start-up, rather than in every test
        return make
    _check_policy(target, where)
    instance: PolicyProtocol = target
    if type(instance) is AssertNoEffects:
        return _GuardedNoEffects
    return lambda: instance


POLICY_HELP = (
    "run every test inside an airlock scope with this policy: drop-all, assert-no-effects, "
    "allow-all, none, or a dotted path to a policy class/factory/instance. Tests using the "
    "airlock_scope fixture or the airlock marker decide for themselves."
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("airlock", "airlock side-effect control")
    group.addoption(
        "--airlock-policy", dest="airlock_policy", default=None, metavar="POLICY", help=POLICY_HELP
    )
    parser.addini("airlock_policy", POLICY_HELP, default="")


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
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.airlock takes at most one positional argument (the policy)"
        )
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
    raise RuntimeError(
        "airlock: the scope's aenter() suspended; use 'async with airlock.scope()' in the test"
    )


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
        # Flush only after a test that passed: not one that failed, was
        # skipped (before or during its call), xfailed or xpassed.
        call = item.stash.get(_call_key, None)
        passed = call is not None and call.passed and not hasattr(call, "wasxfail")
        error = item.stash.get(_error_key, None)
        if is_async:
            _end_async(test_scope, error, passed)
        else:
            test_scope.end(error, flush=passed)
    # Violations swallowed while the fixtures were torn down.
    _raise_swallowed(item, test_scope)


def _end_async(test_scope: Scope, error: BaseException | None, flush: bool) -> None:
    """``test_scope.aend(error, flush=flush)``, for a scope entered in this synchronous context.

    ``aend`` cannot run as one coroutine here: the scope must be exited in the
    context that entered it (this one), while its coroutine tasks must be
    awaited on an event loop, which runs them in a *copy* of this context.
    So the scope is exited here and the rest of ``aend`` (decide, then
    ``aflush`` or ``discard``) happens on a fresh loop.
    """
    test_scope.exit()
    if test_scope.is_flushed or test_scope.is_discarded:
        return  # a subclass's exit() ended it already
    try:
        keep = flush and test_scope.should_flush(error)
    except BaseException:
        test_scope.discard()
        raise
    if keep:
        asyncio.run(test_scope.aflush())
    else:
        test_scope.discard()


def _test_codes(item: pytest.Item) -> set[CodeType]:
    """The code objects of the test function (and of what its decorators wrap)."""
    codes = set()
    function = getattr(item, "obj", None)
    while function is not None:
        code = getattr(function, "__code__", None)
        if code is not None:
            codes.add(code)
        function = getattr(function, "__wrapped__", None)
    return codes


def _handled_by_the_test(violation: BaseException, test_codes: set[CodeType]) -> bool:
    # An exception's traceback starts at the frame that caught it. The test
    # function itself (``with pytest.raises(...)``, ``try``/``except`` in its
    # body) or pytest (``pytest.raises(E, func)``) means the test dealt with
    # it; any other frame, even a helper defined in the test module, means
    # code the test called swallowed it.
    tb = violation.__traceback__
    if tb is None:
        return False
    frame = tb.tb_frame
    return frame.f_code in test_codes or str(frame.f_globals.get("__name__", "")).startswith("_pytest.")


def _raise_swallowed(item: pytest.Item, test_scope: Scope | None = None) -> None:
    """Fail the test if the code under test swallowed a violation of its ``AssertNoEffects``."""
    if test_scope is None:
        test_scope = item.stash.get(_scope_key, None)
    guard = getattr(test_scope, "policy", None)
    if not isinstance(guard, _GuardedNoEffects):
        return
    start = item.stash.get(_reported_key, 0)
    new = guard.violations[start:]
    item.stash[_reported_key] = len(guard.violations)
    codes = _test_codes(item)
    swallowed = [violation for violation in new if not _handled_by_the_test(violation, codes)]
    if not swallowed:
        return
    listing = "\n".join(f"  #{number} {violation}" for number, violation in enumerate(swallowed, 1))
    raise PolicyViolation(
        f"{len(swallowed)} side effect(s) were attempted under assert-no-effects and the PolicyViolation "
        f"was caught by the code under test, which went on as if nothing had happened:\n{listing}\n"
        "The test fails anyway. (A test that expects the violation checks it in the test function "
        "itself, e.g. 'with pytest.raises(airlock.PolicyViolation):'.)"
    ) from swallowed[0]


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


T = TypeVar("T")


def _forget(item: pytest.Item, key: pytest.StashKey[T]) -> None:
    if key in item.stash:
        del item.stash[key]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    result = yield
    _raise_swallowed(item)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.when == "call":
        item.stash[_call_key] = report
    if call.excinfo is not None and report.when in ("setup", "call"):
        item.stash[_error_key] = call.excinfo.value
    test_scope = item.stash.get(_scope_key, None)
    if test_scope is not None and report.failed and report.when in ("call", "setup"):
        report.sections.append(
            (
                "Captured airlock intents",
                f"{test_scope!r} held {len(test_scope.intents)} intent(s):\n"
                + describe_intents(test_scope.intents),
            )
        )
    if report.when == "teardown":
        # Items live as long as the session: do not keep the test's scope (its
        # intents, their arguments, the violations' tracebacks) alive with them.
        _forget(item, _scope_key)
        _forget(item, _call_key)
        _forget(item, _error_key)
        _forget(item, _reported_key)
    return report
