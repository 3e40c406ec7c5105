"""mypy --strict accepts the public API as users write it, and rejects misuse.

The full ``make typecheck`` (package + check_public_api.py) runs in ``.ci/run``;
this test keeps the typing contract inside the ordinary test run too, and
proves the check has teeth.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from mypy import api

HERE = Path(__file__).parent


def run_mypy(*paths: str, cache: Path) -> tuple[str, int]:
    out, err, status = api.run(["--strict", "--cache-dir", str(cache), "--no-error-summary", *paths])
    return out + err, status


def test_public_api_file_passes_strict(tmp_path_factory: pytest.TempPathFactory) -> None:
    out, status = run_mypy(str(HERE / "check_public_api.py"), cache=tmp_path_factory.getbasetemp() / "mypy")
    assert status == 0, out


def test_misuse_is_a_type_error(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    bad = tmp_path / "bad_usage.py"
    bad.write_text(
        textwrap.dedent(
            """
            import airlock
            from airlock.testing import assert_enqueued, capture

            def send_email(order_id: int) -> None: ...

            airlock.enqueue("send_email", 1)
            with airlock.scope(policy="drop-all") as s:
                s.intents.append(3)
            intent = airlock.enqueue(send_email, 1)
            name: int = intent.name
            with capture() as captured:
                assert_enqueued(captured, 42)

            @airlock.scoped
            def handle(order_id: int) -> str:
                return "ok"

            handle("not an int")
            """
        )
    )
    out, status = run_mypy(str(bad), cache=tmp_path_factory.getbasetemp() / "mypy")
    assert status == 1
    errors = sorted(int(line.split(":")[1]) for line in out.splitlines() if ": error:" in line)
    assert errors == [7, 8, 9, 11, 13, 19], out
