"""Entry point of the airlock pytest plugin; the plugin itself is :mod:`airlock.pytest_plugin`.

This module lives outside the ``airlock`` package on purpose. pytest imports
entry-point plugins before coverage tools (pytest-cov) start measuring, so a
plugin inside the package would import ``airlock`` too early and hide its
module-level code from coverage. Here we only declare the command-line option
(options must exist before the command line is parsed) and register the real
plugin when pytest configures, after measurement has started.
"""

from __future__ import annotations

import pytest

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
    from airlock import pytest_plugin

    if not config.pluginmanager.is_registered(pytest_plugin):
        config.pluginmanager.register(pytest_plugin, "airlock.pytest_plugin")
