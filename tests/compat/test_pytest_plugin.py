"""Test suites written for airlock-py 0.1 run unchanged with our pytest plugin installed.

airlock-py 0.1 had no pytest plugin: its documentation tests side effects
with plain scopes (``AssertNoEffects``, ``DropAll``, ``BlockTasks``). Our
plugin registers itself through the ``pytest11`` entry point, so it is
active in every suite that installs airlock; it must change nothing for a
suite that does not opt in, and must not break such a suite's own
assertions when a project turns the suite-wide policy on.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

ORDERS = """
import airlock

sent = []


def notify_warehouse(order_id):
    sent.append(("notify_warehouse", order_id))


def send_confirmation_email(order_id=None):
    sent.append(("send_confirmation_email", order_id))


class Order:
    id = 7
    status = "new"

    def process(self):
        self.status = "processed"
        airlock.enqueue(notify_warehouse, self.id)
        airlock.enqueue(send_confirmation_email)

    def hopefully_pure_function(self):
        return self.status
"""

# The original project page's tl;dr, as a test module.
ORIGINAL_STYLE_TESTS = """
import pytest
import airlock
from orders import Order, sent


@pytest.fixture(autouse=True)
def _clean():
    sent.clear()


def test_production_flushes_at_the_end():
    order = Order()
    with airlock.scope():
        order.process()
        assert sent == []
    assert [name for name, _ in sent] == ["notify_warehouse", "send_confirmation_email"]


def test_migration_suppresses_everything():
    with airlock.scope(policy=airlock.DropAll()):
        Order().process()
    assert sent == []


def test_pure_code_passes_under_assert_no_effects():
    with airlock.scope(policy=airlock.AssertNoEffects()):
        assert Order().hopefully_pure_function() == "new"


def test_impure_code_raises_under_assert_no_effects():
    with airlock.scope(policy=airlock.AssertNoEffects()):
        with pytest.raises(airlock.PolicyViolation, match="Unexpected side effect"):
            Order().process()
    assert sent == []


def test_surface_the_side_effects():
    with airlock.scope(policy=airlock.DropAll()) as scope:
        Order().process()
        assert len(scope.intents) == 2
        assert [(i.name, i.args) for i in scope.intents] == [("notify_warehouse", (7,)), ("send_confirmation_email", ())]
    assert sent == []


def test_selective_control():
    with airlock.scope(policy=airlock.BlockTasks({"send_confirmation_email"})) as scope:
        Order().process()
        assert len(scope.intents) == 2
    assert [name for name, _ in sent] == ["notify_warehouse"]


def test_no_scope_outside():
    assert airlock.get_current_scope() is None
    with pytest.raises(airlock.NoScopeError):
        Order().process()
"""


@pytest.fixture(autouse=True)
def _plain_inner_runs(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # The generated suites are plain pytest, without this session's Django settings.
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:django")
    pytester.makepyfile(orders=ORDERS)
    pytester.syspathinsert()


def test_an_original_style_suite_runs_unchanged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_orders=ORIGINAL_STYLE_TESTS)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=7)
    # The plugin is there (it is what the entry point registered) and stayed out of the way.
    assert "airlock" in pytester.runpytest("--help").stdout.str()


def test_the_suite_wide_policy_does_not_break_explicit_scopes(pytester: pytest.Pytester) -> None:
    # With --airlock-policy=assert-no-effects, a test that opens its own
    # AssertNoEffects scope and expects the violation still passes: its own
    # scope's policy refuses the enqueue first, and the test handled it.
    pytester.makepyfile(
        """
        import pytest
        import airlock
        from orders import Order

        def test_impure_code_raises_under_assert_no_effects():
            with airlock.scope(policy=airlock.AssertNoEffects()):
                with pytest.raises(airlock.PolicyViolation, match="Unexpected side effect"):
                    Order().process()

        def test_pure_code():
            assert Order().hopefully_pure_function() == "new"

        def test_unplanned_effect_is_caught():
            with airlock.scope():
                Order().process()
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "--airlock-policy=assert-no-effects")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["E *PolicyViolation: *notify_warehouse*", "FAILED *::test_unplanned_effect_is_caught*"]
    )


def test_a_projects_own_airlock_scope_fixture_wins(pytester: pytest.Pytester) -> None:
    # Projects that wrote their own ``airlock_scope`` fixture for 0.1 keep it:
    # a conftest fixture overrides a plugin fixture of the same name.
    pytester.makeconftest(
        """
        import pytest
        import airlock

        @pytest.fixture
        def airlock_scope():
            with airlock.scope(policy=airlock.BlockTasks({"send_confirmation_email"})) as scope:
                yield scope
        """
    )
    pytester.makepyfile(
        """
        import airlock
        from orders import Order

        def test_uses_the_projects_fixture(airlock_scope):
            assert isinstance(airlock_scope.policy, airlock.BlockTasks)
            Order().process()
            assert len(airlock_scope.intents) == 2
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


SCOPE_SHAPES = {
    "kwargs-only": ("def __init__(self, **kwargs):", "super().__init__(**kwargs)"),
    "policy-and-executor": (
        "def __init__(self, policy=None, executor=None):",
        "super().__init__(policy=policy, executor=executor)",
    ),
}


@pytest.mark.parametrize("shape", SCOPE_SHAPES)
def test_a_configured_custom_scope_class_is_the_test_scope(pytester: pytest.Pytester, shape: str) -> None:
    # Scope subclasses in the shapes of 0.1's guides, configured at start-up
    # (where a project's settings do it): the plugin's scopes are of that class.
    signature, body = SCOPE_SHAPES[shape]
    pytester.makeconftest(
        "import airlock\n\n\n"
        f"class ProjectScope(airlock.Scope):\n    {signature}\n        {body}\n\n\n"
        "def pytest_configure(config):\n    airlock.configure(scope_cls=ProjectScope)\n"
    )
    pytester.makepyfile(
        """
        import pytest
        import airlock
        from conftest import ProjectScope
        from orders import Order

        def test_fixture(airlock_scope):
            assert type(airlock_scope) is ProjectScope
            Order().process()
            assert len(airlock_scope.intents) == 2

        @pytest.mark.airlock(policy="assert-no-effects")
        def test_marker():
            assert type(airlock.get_current_scope()) is ProjectScope
            with pytest.raises(airlock.PolicyViolation, match="Unexpected side effect"):
                Order().process()
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
