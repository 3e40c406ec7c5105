"""SPEC §2.9: context handling (current scope, local policies, thread pools, greenlet check)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

import airlock
from core_helpers import Recorder


def test_get_current_scope_follows_nesting() -> None:
    assert airlock.get_current_scope() is None
    with airlock.scope() as outer:
        assert airlock.get_current_scope() is outer
        with airlock.scope() as inner:
            assert airlock.get_current_scope() is inner
        assert airlock.get_current_scope() is outer
    assert airlock.get_current_scope() is None


def test_local_policy_block_returns_the_policy_and_restores_on_error() -> None:
    drop = airlock.DropAll()
    rec = Recorder()
    with airlock.scope():
        with pytest.raises(RuntimeError):
            with airlock.policy(drop) as entered:
                assert entered is drop
                raise RuntimeError
        intent = airlock.enqueue(rec.task("after"))
    assert intent.local_policies == ()
    assert rec.names == ["after"]


def test_local_policy_async_with() -> None:
    rec = Recorder()

    async def main() -> None:
        async with airlock.scope():
            async with airlock.policy(airlock.BlockTasks({"x"})) as p:
                assert isinstance(p, airlock.BlockTasks)
                airlock.enqueue(rec.task("x"))
                await asyncio.sleep(0)
                airlock.enqueue(rec.task("y"))
            airlock.enqueue(rec.task("x"))

    asyncio.run(main())
    assert rec.names == ["y", "x"]


def test_carry_context_lands_intents_in_the_callers_scope() -> None:
    rec = Recorder()

    def work(n: int) -> str:
        airlock.enqueue(rec.task("job"), n)
        return "done"

    with airlock.scope() as s, ThreadPoolExecutor(max_workers=4) as pool:
        wrapped = airlock.carry_context(work)
        results = list(pool.map(wrapped, range(20)))
        assert results == ["done"] * 20
        assert rec.calls == []  # buffered in the caller's scope
        assert sorted(i.args[0] for i in s.intents) == list(range(20))
    assert sorted(rec.first_args) == list(range(20))
    assert wrapped.__name__ == "work"


def test_without_carry_context_the_pool_has_no_scope() -> None:
    def work() -> None:
        airlock.enqueue(print)

    with airlock.scope() as s, ThreadPoolExecutor(max_workers=1) as pool:
        with pytest.raises(airlock.NoScopeError):
            pool.submit(work).result()
        assert s.intents == []


def test_carry_context_carries_local_policies() -> None:
    rec = Recorder()
    with airlock.scope(), ThreadPoolExecutor(max_workers=2) as pool:
        with airlock.policy(airlock.BlockTasks({"blocked"})):
            job = airlock.carry_context(lambda: airlock.enqueue(rec.task("blocked")))
        pool.submit(job).result()
        pool.submit(airlock.carry_context(lambda: airlock.enqueue(rec.task("fine")))).result()
    assert rec.names == ["fine"]


def test_carry_context_scope_opened_in_the_job_stays_in_the_job() -> None:
    rec = Recorder()

    def job() -> airlock.Scope | None:
        with airlock.scope():
            airlock.enqueue(rec.task("inner"))
        return airlock.get_current_scope()

    with airlock.scope() as s, ThreadPoolExecutor(max_workers=2) as pool:
        wrapped = airlock.carry_context(job)
        assert [f.result() for f in [pool.submit(wrapped) for _ in range(5)]] == [s] * 5
        assert airlock.get_current_scope() is s
        assert [i.name for i in s.captured_intents] == ["inner"] * 5
    assert rec.names == ["inner"] * 5


# -- the greenlet import-time check --------------------------------------------
# An old greenlet cannot be installed next to gevent, so the fault is simulated
# in a fresh interpreter that imports airlock after faking what it inspects.

_PRELUDE = """
import sys, types, warnings, importlib.metadata as md
warnings.simplefilter("error", RuntimeWarning)
"""


def _import_airlock_with(fake: str) -> subprocess.CompletedProcess[str]:
    code = _PRELUDE + textwrap.dedent(fake) + "\nimport airlock\nprint('imported')\n"
    env = {**os.environ, "PYTHONWARNINGS": ""}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)


def test_old_greenlet_already_imported_warns_at_import() -> None:
    result = _import_airlock_with("sys.modules['greenlet'] = types.SimpleNamespace(__version__='0.4.17')")
    assert result.returncode != 0
    assert "RuntimeWarning" in result.stderr and "greenlet 0.4.17" in result.stderr
    assert "greenlet >= 1.0" in result.stderr


def test_old_greenlet_installed_but_not_imported_warns_at_import() -> None:
    # greenlet 0.x was one extension module; >= 1.0 is a package. A plain
    # greenlet module first on the path stands in for an old install.
    result = _import_airlock_with(
        """
        import os, tempfile
        where = tempfile.mkdtemp()
        with open(os.path.join(where, 'greenlet.py'), 'w') as f:
            f.write("raise SystemExit('the check must not import greenlet')")
        sys.path.insert(0, where)
        sys.modules.pop('greenlet', None)
        """
    )
    assert result.returncode != 0
    assert "RuntimeWarning" in result.stderr and "greenlet < 1.0" in result.stderr
    assert "must not import" not in result.stderr


def test_the_greenlet_check_does_not_read_package_metadata() -> None:
    # Importing airlock stays cheap: no importlib.metadata scan of every installed package.
    result = _import_airlock_with(
        """
        def forbidden(*args, **kwargs):
            raise AssertionError('importlib.metadata was used')
        md.version = md.distribution = md.distributions = forbidden
        sys.modules.pop('greenlet', None)
        """
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "fake",
    [
        "import greenlet",  # the real, current greenlet
        "sys.modules['greenlet'] = types.SimpleNamespace(__version__='1.0.0')",
        "sys.modules['greenlet'] = None  # not installed: the import system finds nothing",
        "sys.modules['greenlet'] = types.SimpleNamespace(__version__='dev-build')",
    ],
    ids=["real-greenlet", "greenlet-1.0", "no-greenlet", "unparsable-version"],
)
def test_no_warning_when_greenlet_is_fine_or_absent(fake: str) -> None:
    result = _import_airlock_with(fake)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"
