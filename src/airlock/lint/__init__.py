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
`airlock.lint._checker` and on the documentation's lint page.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._checker import CODE, Violation, find_violations

__all__ = ["CODE", "Plugin", "Violation", "check_file", "check_source"]

#: flake8's codes for a file it could not parse (E999) or tokenize/read (E902).
_UNPARSEABLE = ("E902", "E999")
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
    """AIR001 findings in the file at ``path`` (see [`check_source()`][airlock.lint.check_source])."""
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

    @staticmethod
    def parse_options(options: argparse.Namespace) -> None:
        """Under ``--select=AIR``, also report files flake8 cannot parse (E999, E902).

        flake8 runs no plugin on a file it cannot parse and reports E999 instead;
        with only AIR selected that report was filtered out, so a file AIR001 never
        checked looked clean. An explicit ``--ignore``/``--extend-ignore`` of them
        still wins.
        """
        select = options.select or []
        chosen = [*select, *(options.extend_select or [])]
        if (
            select
            and any(CODE.startswith(code) for code in chosen)
            and not any("E999".startswith(code) for code in chosen)
        ):
            options.extend_select = [*(options.extend_select or []), *_UNPARSEABLE]

    def run(self) -> Iterator[tuple[int, int, str, type[Any]]]:
        if not isinstance(self._tree, ast.Module):  # pragma: no cover - flake8 always passes a module
            return
        for violation in find_violations(self._tree):
            yield violation.line, violation.col, violation.text, type(self)
