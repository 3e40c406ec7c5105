"""Every ```python block in docs/ runs, page by page, so no sample can rot.

Each page runs in its own interpreter (samples may configure Django or install
interceptors; nothing must leak into the rest of the suite or the next page),
in a fresh temp directory, with airlock's configuration reset.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
DOCS = REPO / "docs"
RUNNER = Path(__file__).parent / "page_runner.py"
_spec = importlib.util.spec_from_file_location("airlock_docs_page_runner", RUNNER)
assert _spec is not None and _spec.loader is not None
page_runner = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = page_runner  # dataclasses look their module up
_spec.loader.exec_module(page_runner)
extract_blocks = page_runner.extract_blocks
PAGES = sorted(DOCS.rglob("*.md"))


def run(page: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A page starts from a clean process: not even the test session's Django
    # settings (pytest-django exports DJANGO_SETTINGS_MODULE) leak into it.
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS")}
    return subprocess.run(
        [sys.executable, str(RUNNER), str(page)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_samples_run(page: Path, tmp_path: Path) -> None:
    result = run(page, tmp_path)
    if result.returncode != 0:
        pytest.fail(
            f"samples of docs/{page.relative_to(DOCS)} failed:\n{result.stderr}{result.stdout}", pytrace=False
        )


def test_docs_have_pages_with_samples() -> None:
    # Guard against the parametrised test passing because nothing was found.
    assert len(PAGES) >= 10
    assert sum(1 for p in PAGES if any(b.kind == "python" for b in extract_blocks(p.read_text()))) >= 5


PAGE = textwrap.dedent(
    '''\
    <!-- docs-setup
    import os
    hidden = "set up"
    -->
    # A page

    ```python
    import airlock
    assert airlock.get_configuration()["policy"] is None
    airlock.configure(policy=airlock.DropAll())
    shared = hidden + " and shared"
    ```

    ```sh
    this is not python
    ```

    !!! note
        ```python
        import asyncio
        await asyncio.sleep(0)
        assert shared == "set up and shared"
        open("written-here.txt", "w").close()
        ```

    ````python
    fence = """
    ```
    """
    assert fence.strip() == "`" * 3
    ````
    '''
)


def test_runner_runs_setup_and_blocks_in_one_namespace(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    kinds = [(b.kind, b.line) for b in extract_blocks(PAGE)]
    assert kinds == [("setup", 2), ("python", 8), ("python", 20), ("python", 27)]
    work = tmp_path / "cwd"
    work.mkdir()
    result = run(page, work)
    assert result.returncode == 0, result.stderr
    assert (work / "written-here.txt").exists()  # samples run in the given directory


TEST_PAGE = textwrap.dedent(
    """\
    ```python title="shop.py"
    def total(prices):
        return sum(prices)
    ```

    ```ini title="pytest.ini"
    [pytest]
    addopts = -p no:randomly
    ```

    ```python title="test_shop.py"
    from shop import total

    def test_total():
        assert total([1, 2]) == EXPECTED
    ```
    """
)


@pytest.mark.parametrize(("expected", "status"), [(3, 0), (4, 1)])
def test_runner_runs_pytest_on_titled_test_files(tmp_path: Path, expected: int, status: int) -> None:
    page = tmp_path / "page.md"
    page.write_text(TEST_PAGE.replace("EXPECTED", str(expected)))
    work = tmp_path / "cwd"
    work.mkdir()
    result = run(page, work)
    assert result.returncode == status, result.stderr
    assert (work / "pytest.ini").read_text() == "[pytest]\naddopts = -p no:randomly\n"
    if status:
        assert f"FAILED: {page}: pytest on test_shop.py" in result.stderr
        assert "assert 3 == 4" in result.stderr


def test_runner_names_the_page_and_line_of_a_failing_block(tmp_path: Path) -> None:
    page = tmp_path / "broken.md"
    page.write_text("# Broken\n\n```python\nx = 1\n\nraise ValueError('rotten sample')\n```\n")
    result = run(page, tmp_path)
    assert result.returncode == 1
    assert f"FAILED: {page}:4 (python block)" in result.stderr
    assert f'File "{page}", line 6' in result.stderr
    assert "ValueError: rotten sample" in result.stderr


def test_pages_run_as_a_real_main_module(tmp_path: Path) -> None:
    # Libraries resolve string annotations through sys.modules[cls.__module__].
    page = tmp_path / "annotations.md"
    page.write_text(
        "```python\nfrom __future__ import annotations\nimport typing\n\n"
        "class Order:\n    total: Money\n\nclass Money:\n    pass\n\n"
        "assert typing.get_type_hints(Order) == {'total': Money}\n```\n"
    )
    result = run(page, tmp_path)
    assert result.returncode == 0, result.stderr
