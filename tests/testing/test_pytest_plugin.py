"""The pytest plugin, run for real on generated test files with ``pytester``.

Nothing here loads the plugin by hand: the inner runs see it only through the
``pytest11`` entry point of the installed distribution.
"""

from __future__ import annotations

import re

import pytest

TASKS = """
import airlock

ran = []


def send_email(*args, **kwargs):
    ran.append(("send_email", args))


async def deliver(*args):
    ran.append(("deliver", args))
"""


@pytest.fixture(autouse=True)
def _inner_runs_without_the_outer_django(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # The outer session may run with pytest-django configured (the ini's
    # DJANGO_SETTINGS_MODULE lands in the environment); the generated test
    # files here are plain pytest and must not inherit it. (Set after the
    # pytester fixture, which clears PYTEST_ADDOPTS when it starts.)
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:django")


@pytest.fixture
def tasks_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(tasks=TASKS)
    pytester.syspathinsert()


def test_entry_point_registers_option_and_marker(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--airlock-policy=POLICY*"])
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.airlock(policy=DropAll(), **scope_kwargs)*"])


def test_fixture_captures_and_nothing_escapes(pytester: pytest.Pytester, tasks_module: None) -> None:
    pytester.makepyfile(
        """
        import airlock
        from airlock.testing import assert_enqueued
        from tasks import ran, send_email

        def test_enqueue(airlock_scope):
            assert isinstance(airlock_scope.policy, airlock.DropAll)
            assert airlock.get_current_scope() is airlock_scope
            airlock.enqueue(send_email, 42, force=True)
            with airlock.scope():  # a nested unit of work flushes into the test scope
                airlock.enqueue(send_email, 43)
            assert [(i.name, i.args) for i in airlock_scope.intents] == [("send_email", (42,)), ("send_email", (43,))]
            assert [i.args for i in airlock_scope.captured_intents] == [(43,)]
            assert_enqueued(airlock_scope, send_email, 42, force=True)

        def test_nothing_escaped_and_scope_is_gone():
            assert ran == []
            assert airlock.get_current_scope() is None
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_failure_report_lists_the_intents(pytester: pytest.Pytester, tasks_module: None) -> None:
    pytester.makepyfile(
        """
        import airlock
        from tasks import send_email

        def test_fails(airlock_scope):
            airlock.enqueue(send_email, 42, force=True)
            airlock.enqueue(send_email, "x", _origin="POST /checkout")
            assert len(airlock_scope.intents) == 1
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- Captured airlock intents -*",
            "<Scope active policy=DropAll() intents=2> held 2 intent(s):",
            "  #1 send_email(42, force=True)",
            "  #2 send_email('x')  [origin: POST /checkout]",
        ]
    )


def test_failing_assert_enqueued_shows_the_diff(pytester: pytest.Pytester, tasks_module: None) -> None:
    pytester.makepyfile(
        """
        import airlock
        from airlock.testing import assert_enqueued
        from tasks import send_email

        def test_fails(airlock_scope):
            airlock.enqueue(send_email, 41)
            assert_enqueued(airlock_scope, send_email, 42)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * send_email(42) was not enqueued; 1 intent(s) were:",
            "E *- send_email(42)    (expected)",
            "E *+ send_email(41)    (#1, same task, different arguments)",
        ]
    )


def test_marker_chooses_the_policy(pytester: pytest.Pytester, tasks_module: None) -> None:
    pytester.makepyfile(
        """
        import pytest
        import airlock
        from tasks import ran, send_email

        @pytest.mark.airlock(policy=airlock.AssertNoEffects())
        def test_pure_instance():
            with pytest.raises(airlock.PolicyViolation, match="send_email was enqueued"):
                airlock.enqueue(send_email, 1)

        @pytest.mark.airlock(policy="assert-no-effects")
        def test_pure_by_name():
            with airlock.scope():  # the test scope's policy judges nested scopes too
                with pytest.raises(airlock.PolicyViolation):
                    airlock.enqueue(send_email, 2)

        @pytest.mark.airlock
        def test_bare_marker_is_drop_all():
            assert isinstance(airlock.get_current_scope().policy, airlock.DropAll)
            airlock.enqueue(send_email, 3)

        @pytest.mark.airlock(airlock.AllowAll(), origin="test-origin")
        def test_allow_all_dispatches_after_the_test(airlock_scope):
            airlock.enqueue(send_email, 4)
            assert airlock_scope.intents[0].origin == "test-origin"
            assert ran == []

        def test_only_the_allowed_one_ran():
            assert ran == [("send_email", (4,))]

        @pytest.mark.airlock(policy=None)
        def test_opted_out():
            with pytest.raises(airlock.NoScopeError):
                airlock.enqueue(send_email, 5)
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=6)


def test_a_failing_test_discards_instead_of_flushing(pytester: pytest.Pytester, tasks_module: None) -> None:
    pytester.makepyfile(
        """
        import pytest
        import airlock
        from tasks import ran, send_email

        @pytest.mark.airlock(policy="allow-all")
        def test_fails():
            airlock.enqueue(send_email, 1)
            raise RuntimeError("boom")

        def test_nothing_ran():
            assert ran == []
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)


@pytest.mark.parametrize("how", ["option", "ini"])
def test_global_policy_applies_to_every_test(pytester: pytest.Pytester, tasks_module: None, how: str) -> None:
    pytester.makepyfile(
        """
        import pytest
        import airlock
        from tasks import send_email

        def test_effect_is_refused():
            airlock.enqueue(send_email, 1)

        def test_pure():
            assert isinstance(airlock.get_current_scope().policy, airlock.AssertNoEffects)

        def test_fixture_still_captures(airlock_scope):
            airlock.enqueue(send_email, 2)
            assert isinstance(airlock_scope.policy, airlock.DropAll)
            assert len(airlock_scope.intents) == 1

        @pytest.mark.airlock(policy="drop-all")
        def test_marker_wins():
            airlock.enqueue(send_email, 3)
        """
    )
    if how == "ini":
        pytester.makeini("[pytest]\nairlock_policy = assert-no-effects\n")
        result = pytester.runpytest()
    else:
        pytester.makeini("[pytest]\nairlock_policy = drop-all\n")  # the option beats the ini
        result = pytester.runpytest("--airlock-policy=assert-no-effects")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*PolicyViolation: AssertNoEffects: send_email was enqueued (send_email(1))*"]
    )


def test_global_policy_from_a_dotted_path(pytester: pytest.Pytester, tasks_module: None) -> None:
    pytester.makepyfile(
        mypolicies="""
        import airlock

        class OnlyEmails(airlock.Policy):
            def allows(self, intent):
                return intent.name == "send_email"

        def make_blocker():
            return airlock.BlockTasks({"send_email"})

        shared = airlock.DropAll()
        """
    )
    pytester.makepyfile(
        """
        import airlock

        def test_policy():
            policy = airlock.get_current_scope().policy
            print("POLICY", type(policy).__name__)
        """
    )
    for spec, expected in [
        ("mypolicies.OnlyEmails", "OnlyEmails"),
        ("mypolicies:make_blocker", "BlockTasks"),
        ("mypolicies.shared", "DropAll"),
    ]:
        result = pytester.runpytest("-s", f"--airlock-policy={spec}")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines([f"*POLICY {expected}*"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "no-such-policy",
            "*'no-such-policy' is neither one of drop-all, assert-no-effects, allow-all nor a dotted path*",
        ),
        ("nomodule.Policy", "*cannot import the policy 'nomodule.Policy'*"),
        ("os.sep", "*'os.sep' is '/', not a policy, policy class or factory*"),
        ("collections:OrderedDict", "*needs a policy (an object with on_enqueue() and allows())*"),
    ],
)
def test_bad_global_policy_is_a_usage_error(pytester: pytest.Pytester, spec: str, message: str) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(f"--airlock-policy={spec}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bad_markers_are_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import airlock

        @pytest.mark.airlock(policy=airlock.DropAll)
        def test_class_not_instance():
            pass

        @pytest.mark.airlock(policy=None)
        def test_fixture_and_opt_out(airlock_scope):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*needs a policy instance, got the class DropAll; write DropAll()*",
            "*uses the airlock_scope fixture but its airlock marker says policy=None*",
        ]
    )


def test_async_tests_can_enqueue_coroutine_tasks(pytester: pytest.Pytester, tasks_module: None) -> None:
    pytester.makepyfile(
        """
        import pytest
        import airlock
        from tasks import deliver, ran

        pytestmark = pytest.mark.anyio

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        async def test_capture_coroutine_task(airlock_scope):
            airlock.enqueue(deliver, 1)
            assert [i.name for i in airlock_scope.intents] == ["deliver"]

        @pytest.mark.airlock(policy="allow-all")
        async def test_dispatch_coroutine_task():
            airlock.enqueue(deliver, 2)

        def test_only_the_allowed_one_was_awaited():
            assert ran == [("deliver", (2,))]
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-W", "error::RuntimeWarning")
    result.assert_outcomes(passed=3)


def test_no_marker_no_option_means_no_scope(pytester: pytest.Pytester, tasks_module: None) -> None:
    pytester.makepyfile(
        """
        import pytest
        import airlock
        from tasks import send_email

        def test_plain():
            assert airlock.get_current_scope() is None
            with pytest.raises(airlock.NoScopeError):
                airlock.enqueue(send_email, 1)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses_fixture(airlock_scope): pass")
    result = pytester.runpytest("-p", "no:airlock")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'airlock_scope' not found*"])


def test_option_none_overrides_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nairlock_policy = assert-no-effects\n")
    pytester.makepyfile(
        """
        import airlock

        def test_no_scope():
            assert airlock.get_current_scope() is None
        """
    )
    pytester.runpytest("--airlock-policy=none").assert_outcomes(passed=1)
    pytester.runpytest().assert_outcomes(failed=1)


# -- the plugin never passes a test it should fail (SPEC §5.2, last bullet) --

SWALLOWING_SERVICE = """
import airlock
from tasks import send_email

def checkout():
    try:
        airlock.enqueue(send_email, 42)
    except Exception:
        pass  # "best effort": the code under test hides the violation
    return "ok"
"""


SWALLOWED = """
import pytest
import airlock
from service import checkout


def test_under_the_option():
    assert checkout() == "ok"


@pytest.mark.airlock(policy="assert-no-effects")
def test_marker_name():
    assert checkout() == "ok"


@pytest.mark.airlock(policy=airlock.AssertNoEffects())
def test_marker_instance():
    assert checkout() == "ok"


@pytest.mark.airlock(policy="airlock.AssertNoEffects")
def test_marker_dotted_class():
    assert checkout() == "ok"


@pytest.fixture
def order():
    checkout()  # swallowed while the fixture is set up
    return 42


def test_swallowed_in_a_fixture(order):
    assert order == 42


@pytest.mark.xfail(strict=True, reason="checkout still enqueues")
def test_known_impure():
    checkout()
"""

HANDLED = """
import pytest
import airlock
from service import checkout_strict as checkout


def test_with_raises():
    with pytest.raises(airlock.PolicyViolation):
        checkout()


def test_with_raises_callable_form():
    pytest.raises(airlock.PolicyViolation, checkout)


def test_with_try_except():
    try:
        checkout()
    except airlock.PolicyViolation:
        pass


class TestInAClass:
    def test_method(self):
        with pytest.raises(airlock.PolicyViolation):
            checkout()


def assert_violates(code):
    with pytest.raises(airlock.PolicyViolation):
        code()


def test_with_a_helper_of_the_test_module():
    # A helper is code the test called: to the plugin, it swallowed the violation.
    assert_violates(checkout)
"""


def test_swallowed_violation_still_fails_the_test(pytester: pytest.Pytester, tasks_module: None) -> None:
    pytester.makepyfile(
        service=SWALLOWING_SERVICE + "\n\ndef checkout_strict():\n    airlock.enqueue(send_email, 43)\n"
    )
    pytester.makepyfile(test_swallowed=SWALLOWED, test_handled=HANDLED)
    result = pytester.runpytest("-p", "no:randomly", "--airlock-policy=assert-no-effects")
    # Every swallowed violation fails its test (the xfail test fails as expected),
    # also one a helper caught; the test functions that handle it themselves pass.
    result.assert_outcomes(failed=6, xfailed=1, passed=4)
    for name in (
        "under_the_option",
        "marker_name",
        "marker_instance",
        "marker_dotted_class",
        "swallowed_in_a_fixture",
    ):
        result.stdout.fnmatch_lines([f"FAILED test_swallowed.py::test_{name} - *"])
    result.stdout.fnmatch_lines(["FAILED test_handled.py::test_with_a_helper_of_the_test_module - *"])
    raised = re.findall(
        r"^E\s+\S*PolicyViolation: 1 side effect\(s\) were attempted", result.stdout.str(), re.M
    )
    assert len(raised) == 6
    result.stdout.fnmatch_lines(
        [
            (
                "*PolicyViolation: 1 side effect(s) were attempted under assert-no-effects and the "
                "PolicyViolation was caught by the code under test*"
            ),
            "*#1 *send_email*",
        ]
    )
    # The original violation is chained, with the line that enqueued.
    result.stdout.fnmatch_lines(["*airlock.enqueue(send_email, 42)*", "*direct cause*"])


def test_swallowed_violation_fails_under_the_ini_policy(
    pytester: pytest.Pytester, tasks_module: None
) -> None:
    pytester.makepyfile(service=SWALLOWING_SERVICE)
    pytester.makeini("[pytest]\nairlock_policy = assert-no-effects\n")
    pytester.makepyfile(
        "from service import checkout\n\ndef test_checkout():\n    assert checkout() == 'ok'\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*caught by the code under test*"])


OUTCOMES = """
import pytest
import airlock
from tasks import ran, send_email

pytestmark = pytest.mark.airlock(policy="allow-all")


@pytest.fixture
def skip_after_entering():
    airlock.enqueue(send_email, "setup-skip")
    pytest.skip("skipped in setup")


def test_passes():
    airlock.enqueue(send_email, "passed")


@pytest.mark.xfail(strict=False, reason="known bug")
def test_xfailed():
    airlock.enqueue(send_email, "xfailed")
    raise AssertionError("the known bug")


@pytest.mark.xfail(strict=False, reason="maybe fixed")
def test_xpassed():
    airlock.enqueue(send_email, "xpassed")


@pytest.mark.xfail(strict=True, reason="must fail")
def test_strict_xpass():
    airlock.enqueue(send_email, "strict-xpass")


def test_imperative_xfail():
    airlock.enqueue(send_email, "imperative-xfail")
    pytest.xfail("not today")


def test_skipped_midway():
    airlock.enqueue(send_email, "skipped")
    pytest.skip("environment lacks something")


def test_skipped_in_setup(skip_after_entering):
    pass


def test_what_ran():
    assert ran == [("send_email", ("passed",))]
"""


def test_only_a_passing_test_dispatches(pytester: pytest.Pytester, tasks_module: None) -> None:
    pytester.makepyfile(OUTCOMES)
    result = pytester.runpytest("-p", "no:randomly", "-rA")
    result.assert_outcomes(passed=2, failed=1, skipped=2, xfailed=2, xpassed=1)


def test_async_xfail_dispatches_nothing(pytester: pytest.Pytester, tasks_module: None) -> None:
    pytester.makepyfile(
        """
        import pytest
        import airlock
        from tasks import deliver, ran, send_email

        pytestmark = [pytest.mark.anyio, pytest.mark.airlock(policy="allow-all")]

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.mark.xfail(strict=False, reason="known bug")
        async def test_xfailed():
            airlock.enqueue(deliver, "xfailed")
            raise AssertionError

        @pytest.mark.xfail(strict=False, reason="maybe fixed")
        async def test_xpassed():
            airlock.enqueue(deliver, "xpassed")

        async def test_skipped():
            airlock.enqueue(deliver, "skipped")
            pytest.skip("no")

        async def test_passes():
            airlock.enqueue(deliver, "passed")

        def test_what_ran():
            assert ran == [("deliver", ("passed",))]
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-W", "error::RuntimeWarning")
    result.assert_outcomes(passed=2, skipped=1, xfailed=1, xpassed=1)


def test_the_scope_class_decides_through_should_flush(pytester: pytest.Pytester, tasks_module: None) -> None:
    # The plugin ends the scope through Scope.end(): a scope class's own
    # should_flush is consulted, and one that raises leaves the scope discarded.
    pytester.makepyfile(
        scopes="""
        import airlock

        class NeverFlush(airlock.Scope):
            def should_flush(self, error):
                return False

        class Broken(airlock.Scope):
            def should_flush(self, error):
                raise RuntimeError("should_flush is broken")
        """
    )
    pytester.makepyfile(
        """
        import pytest
        import airlock
        from scopes import Broken, NeverFlush
        from tasks import ran, send_email

        @pytest.mark.airlock(policy="allow-all", _cls=NeverFlush)
        def test_never_flushed():
            airlock.enqueue(send_email, "never")

        @pytest.mark.airlock(policy="allow-all", _cls=Broken)
        def test_broken():
            airlock.enqueue(send_email, "broken")

        @pytest.mark.airlock(policy="allow-all")
        def test_plain():
            airlock.enqueue(send_email, "plain")

        def test_what_ran():
            assert airlock.get_current_scope() is None
            assert ran == [("send_email", ("plain",))]
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_broken*", "*RuntimeError: should_flush is broken*"]
    )


def test_nothing_of_a_finished_test_is_kept_alive(pytester: pytest.Pytester, tasks_module: None) -> None:
    # The session keeps every item; the plugin must not keep the test's scope
    # (its intents and their arguments) alive through it.
    pytester.makepyfile(
        """
        import gc
        import weakref
        import pytest
        import airlock
        from tasks import send_email

        class Payload:
            pass

        refs = []

        @pytest.mark.airlock(policy="drop-all")
        def test_enqueues():
            payload = Payload()
            refs.append(weakref.ref(payload))
            airlock.enqueue(send_email, payload)

        def test_payload_is_gone():
            gc.collect()
            assert refs[0]() is None
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_async_tests_are_judged_the_same_way(pytester: pytest.Pytester, tasks_module: None) -> None:
    pytester.makepyfile(
        async_service="""
        import airlock
        from tasks import deliver

        async def checkout():
            try:
                airlock.enqueue(deliver, 1)
            except airlock.PolicyViolation:
                pass
        """
    )
    pytester.makepyfile(
        """
        import pytest
        import airlock
        from async_service import checkout
        from tasks import deliver

        pytestmark = [pytest.mark.anyio, pytest.mark.airlock(policy="assert-no-effects")]

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        async def test_swallowed():
            await checkout()

        async def test_handled():
            with pytest.raises(airlock.PolicyViolation):
                airlock.enqueue(deliver, 2)
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED *::test_swallowed - *"])
