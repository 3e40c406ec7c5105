"""AIR001: a linter for task dispatches that bypass airlock.

Use it three ways:

* ``python -m airlock.lint PATH...`` prints ``path:line:col: AIR001 ...`` for
  every finding and exits with status 1 if there was one (2 if a file could
  not be read or parsed);
* as a flake8 plugin (installed with airlock: ``flake8 --select=AIR``);
* as a pre-commit hook (``id: airlock-lint`` in this repository's
  ``.pre-commit-hooks.yaml``).

``# noqa: AIR001`` (or a bare ``# noqa``) at the end of the reported line
silences that line. What is and is not reported is described in
:mod:`airlock.lint._checker` and on the documentation's lint page.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._checker import CODE, Violation, find_violations

__all__ = ["CODE", "Plugin", "Violation", "check_file", "check_source"]

_NOQA = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]*(?:[,\s]+[A-Z]+[0-9]*)*))?", re.IGNORECASE)


def _silenced_lines(source: str) -> set[int]:
    """Lines whose comment is ``# noqa`` or a ``# noqa:`` list matching AIR001."""
    lines: set[int] = set()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - the source parsed already
        return lines
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        match = _NOQA.search(token.string)
        if match is None:
            continue
        codes = match.group("codes")
        if codes is None or any(CODE.startswith(c.upper()) for c in re.split(r"[,\s]+", codes) if c):
            lines.add(token.start[0])
    return lines


def check_source(source: str, filename: str = "<string>") -> list[Violation]:
    """AIR001 findings in ``source`` that no ``# noqa`` silences.

    Raises ``SyntaxError`` if the source does not parse.
    """
    tree = ast.parse(source, filename=filename)
    found = find_violations(tree)
    if not found:
        return found
    silenced = _silenced_lines(source)
    return [v for v in found if v.line not in silenced]


def check_file(path: str | Path) -> list[Violation]:
    """AIR001 findings in the file at ``path`` (see :func:`check_source`)."""
    with tokenize.open(path) as handle:  # honours PEP 263 encoding declarations
        source = handle.read()
    return check_source(source, str(path))


class Plugin:
    """The flake8 plugin (entry point ``AIR`` in ``flake8.extension``).

    flake8 applies ``# noqa`` itself, so the plugin reports every finding.
    """

    name = "airlock"
    version = "1"

    def __init__(self, tree: ast.AST) -> None:
        self._tree = tree

    def run(self) -> Iterator[tuple[int, int, str, type[Any]]]:
        if not isinstance(self._tree, ast.Module):  # pragma: no cover - flake8 always passes a module
            return
        for violation in find_violations(self._tree):
            yield violation.line, violation.col, violation.text, type(self)
