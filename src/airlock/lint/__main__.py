"""``python -m airlock.lint PATH...``: report AIR001 findings, exit 1 if any.

Directories are searched for ``*.py`` files, skipping hidden directories,
``__pycache__``, virtual environments and build output. ``--exclude`` adds
patterns, as flake8's does: comma-separated and repeatable; a pattern with a
``/`` is a path from the current directory (``--exclude 'src/legacy/*'``), any
other matches file and directory names (``--exclude migrations`` skips every
``migrations`` directory).
Output lines read ``path:line:col: AIR001 message`` (1-based column, like
flake8). Exit status: 0 clean, 1 findings, 2 a path was missing or a file
could not be parsed.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import check_file

DEFAULT_EXCLUDE = ("__pycache__", "node_modules", "venv", "env", "build", "dist", "site-packages", ".*")


def _excluded(path: Path, exclude: Sequence[str]) -> bool:
    """flake8's rule: a pattern with a ``/`` matches the absolute path (the pattern
    taken from the current directory), any other the file or directory name."""
    for pattern in exclude:
        if "/" in pattern or os.sep in pattern:
            if fnmatch.fnmatch(os.path.abspath(path), os.path.abspath(pattern)):
                return True
        elif fnmatch.fnmatch(path.name, pattern):
            return True
    return False


def _python_files(root: Path, exclude: Sequence[str]) -> Iterator[Path]:
    if root.is_file():
        yield root  # named on the command line: always checked
        return
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not _excluded(Path(directory, d), exclude))
        for name in sorted(files):
            if name.endswith(".py") and not _excluded(Path(directory, name), exclude):
                yield Path(directory, name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airlock.lint",
        description="Report task dispatches that bypass airlock (AIR001).",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to check")
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="comma-separated name or path patterns to skip (repeatable), e.g. "
        "--exclude migrations,tests/fixtures; added to " + ", ".join(DEFAULT_EXCLUDE),
    )
    args = parser.parse_args(argv)
    exclude = (
        *DEFAULT_EXCLUDE,
        *(p.strip().rstrip("/") for arg in args.exclude for p in arg.split(",") if p.strip()),
    )
    status = 0
    for raw in args.paths:
        root = Path(raw)
        if not root.exists():
            print(f"{raw}: no such file or directory", file=sys.stderr)
            status = 2
            continue
        for path in _python_files(root, exclude):
            try:
                violations = check_file(path)
            except (SyntaxError, UnicodeDecodeError, OSError) as error:
                where = f":{error.lineno}" if isinstance(error, SyntaxError) and error.lineno else ""
                print(f"{path}{where}: cannot check: {type(error).__name__}: {error}", file=sys.stderr)
                status = 2
                continue
            for v in violations:
                print(f"{path}:{v.line}:{v.col + 1}: {v.text}")
            if violations and status == 0:
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
