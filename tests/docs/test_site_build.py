"""The documentation site's build settings: a broken link or anchor fails ``mkdocs build --strict``.

CI builds the real site that way (``.ci/run``); these tests pin that the
configuration in ``mkdocs.yml`` really turns a broken anchor into a failure,
on a two-page site built with it (a second or so, without the API reference).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).parents[2]


# Never ``-q``: it hides the warnings from --strict too, and a broken site builds "clean".
def build(tmp_path: Path, link: str) -> subprocess.CompletedProcess[str]:
    ours = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    config = {
        "site_name": "anchors",
        "validation": ours["validation"],
        "markdown_extensions": [e for e in ours["markdown_extensions"] if e == "toc" or "toc" in e],
        "nav": ["index.md", "other.md"],
    }
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(f"# Home\n\nSee [the section]({link}).\n")
    (docs / "other.md").write_text("# Other\n\n## Letting nested scopes dispatch\n\nText.\n")
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_a_link_to_an_existing_anchor_builds(tmp_path: Path) -> None:
    done = build(tmp_path, "other.md#letting-nested-scopes-dispatch")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("link", "complaint"),
    [
        ("other.md#letting-nested-scopes", "does not contain an anchor '#letting-nested-scopes'"),
        ("missing.md", "not found among documentation files"),
    ],
)
def test_a_broken_link_or_anchor_fails_the_strict_build(tmp_path: Path, link: str, complaint: str) -> None:
    done = build(tmp_path, link)
    assert done.returncode != 0
    assert complaint in done.stderr
