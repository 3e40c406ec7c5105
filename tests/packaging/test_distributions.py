"""What ``pip install airlock-py`` and the sdist carry: licence, metadata, no CI scripts.

Builds the wheel and the sdist from this checkout once per session (hatchling,
without build isolation: a second or two) and reads them as an installer and
a packager would. Each extra alone in a clean virtualenv is ``.ci/extras.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
LICENSE = (REPO / "LICENSE").read_text()


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> zipfile.ZipFile:
    (path,) = dist.glob("airlock_py-*.whl")
    return zipfile.ZipFile(path)


@pytest.fixture(scope="module")
def sdist_names(dist: Path) -> list[str]:
    (path,) = dist.glob("airlock_py-*.tar.gz")
    with tarfile.open(path) as archive:
        return [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]


@pytest.fixture(scope="module")
def metadata(wheel: zipfile.ZipFile) -> Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(name).decode())


def test_the_licence_is_mit_in_the_repository_wheel_and_sdist(
    wheel: zipfile.ZipFile, sdist_names: list[str], metadata: Message
) -> None:
    assert LICENSE.startswith("MIT License\n")
    (licence,) = [n for n in wheel.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    assert wheel.read(licence).decode() == LICENSE
    assert "LICENSE" in sdist_names
    # PEP 639: an SPDX expression and the file, no legacy licence classifier beside them.
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert not [c for c in metadata.get_all("Classifier", []) if c.startswith("License ::")]


def test_the_sdist_carries_no_ci_scripts(sdist_names: list[str]) -> None:
    assert [n for n in sdist_names if n.startswith(".ci/")] == []
    assert ".pre-commit-config.yaml" not in sdist_names
    # ...but what a packager needs to build and test it.
    assert {
        "pyproject.toml",
        "README.md",
        "CHANGELOG.md",
        "src/airlock/__init__.py",
        "tests/conftest.py",
    } <= set(sdist_names)


def test_metadata_links_and_classifiers(metadata: Message) -> None:
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL", []))
    assert {"Source", "Documentation", "Changelog", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    classifiers = set(metadata.get_all("Classifier", []))
    supported = {f"Programming Language :: Python :: 3.{minor}" for minor in (11, 12, 13)}
    assert supported <= classifiers
    assert {
        "Framework :: Django",
        "Framework :: Celery",
        "Framework :: Flask",
        "Framework :: FastAPI",
    } <= classifiers
    assert metadata["Requires-Python"] == ">=3.11"


def test_extras_are_the_integrations_and_development_tools_are_groups(metadata: Message) -> None:
    extras = set(metadata.get_all("Provides-Extra", []))
    assert "test" not in extras  # development dependencies are not a published extra
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert extras == set(project["project"]["optional-dependencies"])
    assert {"test", "core", "checks", "dev"} <= set(project["dependency-groups"])
    # The core has no dependencies.
    assert [r for r in metadata.get_all("Requires-Dist", []) if "extra ==" not in r] == []
