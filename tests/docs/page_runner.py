"""Run the Python samples of one documentation page: ``python page_runner.py PAGE.md``.

The page's ``<!-- docs-setup ... -->`` comments run first (setup readers do
not need to see), then every ```python block, top to bottom, in one
namespace, in the current directory (the test gives each page a fresh temp
directory, which is also put on ``sys.path``), with airlock's configuration
reset. Top-level ``await`` works.

A fenced block with a file title (```python title="test_orders.py"```, which
mkdocs-material shows as a file name) is also written to that file, in page
order, so later blocks can import it. If the page wrote ``test_*.py`` files,
pytest runs them at the end (with the airlock plugin, as installed) and must
pass: that is how the testing guide's pytest examples are proven.

On failure the page, the block's line and the traceback are printed and the
exit status is 1.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import subprocess
import sys
import textwrap
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

PYTHON_LANGUAGES = frozenset({"python", "py", "python3"})
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*)$")
_TITLE = re.compile(r"""title=["'](?P<title>[^"']+)["']""")
_SETUP = re.compile(r"<!--[ \t]*docs-setup[ \t]*\n(?P<code>.*?)-->", re.DOTALL)


@dataclass(frozen=True)
class Block:
    """A piece of Python from a page; ``line`` is the page line of its first code line."""

    kind: str  # "setup", "python", or "file" (a titled block in another language)
    line: int
    code: str
    title: str | None = None


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
        info = opening.group("info")
        language = (info.split() or [""])[0].lstrip("{.").rstrip("}").lower()
        titled = _TITLE.search(info)
        title = titled.group("title") if titled else None
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
            body.append(
                lines[index][len(indent) :] if lines[index].startswith(indent) else lines[index].lstrip()
            )
            index += 1
        index += 1
        if language in PYTHON_LANGUAGES:
            blocks.append(Block("python", start + 1, "\n".join(body) + "\n", title))
        elif title is not None:
            blocks.append(Block("file", start + 1, "\n".join(body) + "\n", title))
    return blocks


def run_page(path: Path) -> int:
    import airlock

    airlock.reset_configuration()
    sys.path.insert(0, os.getcwd())
    # The page runs as a real ``__main__`` module: libraries that resolve
    # annotations or pickle through ``sys.modules[cls.__module__]``
    # (SQLAlchemy, dataclasses, typing.get_type_hints) find its names.
    page_module = types.ModuleType("__main__")
    page_module.__file__ = str(path)
    sys.modules["__main__"] = page_module
    namespace = page_module.__dict__
    written: list[str] = []
    for block in extract_blocks(path.read_text(encoding="utf-8")):
        where = f"{path}:{block.line} ({block.kind} block)"
        if block.title is not None:
            with open(block.title, "a", encoding="utf-8") as handle:
                handle.write(block.code)
            written.append(block.title)
            if block.kind == "file":
                continue
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
    tests = sorted({name for name in written if os.path.basename(name).startswith("test_")})
    if tests:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            print(f"FAILED: {path}: pytest on {', '.join(tests)}", file=sys.stderr)
            print(result.stdout + result.stderr, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_page(Path(sys.argv[1]).resolve()))
