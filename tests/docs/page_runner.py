"""Run the Python samples of one documentation page: ``python page_runner.py PAGE.md``.

The page's ``<!-- docs-setup ... -->`` comments run first (setup readers do
not need to see), then every ```python block, top to bottom, in one
namespace, in the current directory (the test gives each page a fresh temp
directory), with airlock's configuration reset. Top-level ``await`` works.
On failure the page, the block's line and the traceback are printed and the
exit status is 1.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import sys
import textwrap
import traceback
from dataclasses import dataclass
from pathlib import Path

PYTHON_LANGUAGES = frozenset({"python", "py", "python3"})
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*)$")
_SETUP = re.compile(r"<!--[ \t]*docs-setup[ \t]*\n(?P<code>.*?)-->", re.DOTALL)


@dataclass(frozen=True)
class Block:
    """A piece of Python from a page; ``line`` is the page line of its first code line."""

    kind: str  # "setup" or "python"
    line: int
    code: str


def extract_blocks(text: str) -> list[Block]:
    """The page's setup comments, then its Python fences, in page order."""
    blocks = [
        Block("setup", text.count("\n", 0, m.start("code")) + 1, textwrap.dedent(m.group("code")))
        for m in _SETUP.finditer(text)
    ]
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening.group("indent"), opening.group("fence")
        language = (opening.group("info").split() or [""])[0].lstrip("{.").rstrip("}").lower()
        body: list[str] = []
        start = index + 1
        index += 1
        while index < len(lines):
            closing = _FENCE.match(lines[index])
            if (
                closing is not None
                and closing.group("fence")[0] == fence[0]
                and len(closing.group("fence")) >= len(fence)
                and not closing.group("info").strip()
            ):
                break
            body.append(lines[index][len(indent):] if lines[index].startswith(indent) else lines[index].lstrip())
            index += 1
        index += 1
        if language in PYTHON_LANGUAGES:
            blocks.append(Block("python", start + 1, "\n".join(body) + "\n"))
    return blocks


def run_page(path: Path) -> int:
    import airlock

    airlock.reset_configuration()
    namespace: dict[str, object] = {"__name__": "__main__", "__file__": str(path)}
    for block in extract_blocks(path.read_text(encoding="utf-8")):
        where = f"{path}:{block.line} ({block.kind} block)"
        try:
            tree = ast.parse(block.code, filename=str(path))
            ast.increment_lineno(tree, block.line - 1)
            code = compile(tree, str(path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            if code.co_flags & inspect.CO_COROUTINE:
                asyncio.run(eval(code, namespace))  # noqa: S307 - the page's own sample
            else:
                exec(code, namespace)  # noqa: S102 - the page's own sample
        except BaseException:  # noqa: BLE001 - report whatever the sample raised
            print(f"FAILED: {where}", file=sys.stderr)
            traceback.print_exc()
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_page(Path(sys.argv[1]).resolve()))
