"""One-off: turn the docstrings' Sphinx roles into Markdown that mkdocstrings renders.

The API reference (docs/reference.md) is rendered by mkdocstrings, whose
docstrings are Markdown (Google style, ``docstring_style: google`` in
mkdocs.yml). Sphinx roles such as ``:class:`~airlock.Scope``` show up raw there.
This script rewrites every role inside a docstring:

* to an autorefs cross-reference, ``[`Scope`][airlock.Scope]``, when its target
  is an object the reference renders (it reads the site's ``objects.inv``, so a
  link it writes can never be broken: ``mkdocs build --strict`` would fail on one);
  ``:func:``/``:meth:`` get ``()`` as Sphinx shows them, ``~`` keeps the last name;
* to plain code, ```Scope```, when the target is not in the reference (private
  names, other libraries, modules that are not rendered);

and ends a line's ``::`` (a reST literal block) with a single ``:`` (the indented
block after it is already a Markdown code block). Names are resolved the way a
reader would: as written, then relative to the docstring's module and its
packages, then to the enclosing class, then as a unique suffix of a rendered name.

Usage (from the repository root, after ``git merge``):

    NO_MKDOCS_2_WARNING=1 .venv/bin/python -m mkdocs build -q -d /tmp/site
    .venv/bin/python .ci/convert-docstring-roles.py --inventory /tmp/site/objects.inv src
    .venv/bin/python .ci/convert-docstring-roles.py --inventory /tmp/site/objects.inv --check src

``--check`` changes nothing and exits 1 if any role is left (CI can run it).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

ROLE = re.compile(r":(?:py:)?(?P<kind>func|meth|class|exc|attr|data|mod|obj|const):`(?P<target>[^`]+)`")
LITERAL_BLOCK = re.compile(r"(?<=\S)::$", re.MULTILINE)
CALLABLE_KINDS = {"func", "meth"}


def read_inventory(path: Path) -> set[str]:
    """The object names an mkdocstrings ``objects.inv`` lists (format: Sphinx inventory v2)."""
    data = path.read_bytes()
    _, _, compressed = data.partition(b"zlib.\n")
    return {line.split(" ", 1)[0] for line in zlib.decompress(compressed).decode().splitlines() if line}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass
class Docstring:
    node: ast.Constant
    owner: str  # module or module.Class or module.Class.function
    classes: list[str]  # enclosing class names, outermost first


def docstrings(tree: ast.Module, module: str) -> list[Docstring]:
    found: list[Docstring] = []

    def visit(node: ast.AST, owner: str, classes: list[str]) -> None:
        body = getattr(node, "body", None)
        if isinstance(body, list) and body:
            first = body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                found.append(Docstring(first.value, owner, classes))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{owner}.{child.name}", [*classes, child.name])
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, f"{owner}.{child.name}", classes)

    visit(tree, module, [])
    return found


def resolve(target: str, module: str, classes: list[str], inventory: set[str]) -> str | None:
    name = target.lstrip("~.")
    candidates = [name]
    parts = module.split(".")
    for end in range(len(parts), 0, -1):  # the module, then each package above it
        candidates.append(".".join([*parts[:end], name]))
    for cls in reversed(classes):  # the enclosing class, wherever the reference shows it
        for rendered in sorted(n for n in inventory if n.endswith(f".{cls}")):
            candidates.append(f"{rendered}.{name}")
    found = [c for c in candidates if c in inventory]
    if not found:
        suffix = [n for n in inventory if n.endswith(f".{name}")]
        public = [n for n in suffix if not _private(n)]
        found = public if len(public) == 1 else suffix if len(suffix) == 1 else []
    # The reference also lists private aliases (airlock._scope.Scope): link the public name.
    return min(found, key=_private, default=None)


def _private(name: str) -> bool:
    return any(part.startswith("_") for part in name.split("."))


def convert_role(
    match: re.Match[str], module: str, classes: list[str], inventory: set[str], unresolved: list[str]
) -> str:
    kind, target = match["kind"], match["target"]
    shown = target.lstrip("~")
    if target.startswith("~"):
        shown = shown.rsplit(".", 1)[-1]
    if kind in CALLABLE_KINDS and not shown.endswith(")"):
        shown += "()"
    resolved = resolve(target, module, classes, inventory)
    if resolved is None:
        unresolved.append(target)
        return f"`{shown}`"
    return f"[`{shown}`][{resolved}]"


def chars(line: str, byte_offset: int) -> int:
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8"))


def convert_file(path: Path, root: Path, inventory: set[str], unresolved: list[str]) -> tuple[str, int]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    module = module_name(path, root)
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    edits: list[tuple[int, int, str]] = []
    count = 0
    for doc in docstrings(tree, module):
        node = doc.node
        assert node.end_lineno is not None and node.end_col_offset is not None
        # ast columns count UTF-8 bytes; the text is indexed by characters.
        start = offsets[node.lineno - 1] + chars(lines[node.lineno - 1], node.col_offset)
        end = offsets[node.end_lineno - 1] + chars(lines[node.end_lineno - 1], node.end_col_offset)
        text = source[start:end]
        new, n = ROLE.subn(
            lambda m, cls=doc.classes: convert_role(m, module, cls, inventory, unresolved), text
        )
        new = LITERAL_BLOCK.sub(":", new)
        if new != text:
            edits.append((start, end, new))
            count += n
    for start, end, new in reversed(edits):
        source = source[:start] + new + source[end:]
    return source, count


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, required=True, help="the built site's objects.inv")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a role is left")
    parser.add_argument("roots", nargs="+", type=Path, help="source roots (src)")
    args = parser.parse_args(argv)
    inventory = read_inventory(args.inventory)
    total = 0
    unresolved: list[str] = []
    for root in args.roots:
        for path in sorted(root.rglob("*.py")):
            converted, count = convert_file(path, root, inventory, unresolved)
            if count:
                total += count
                print(f"{path}: {count} role(s)")
                if not args.check:
                    path.write_text(converted, encoding="utf-8")
    linked = total - len(unresolved)
    print(
        f"{total} role(s): {linked} cross-reference(s), {len(unresolved)} plain code: {sorted(set(unresolved))}"
    )
    return 1 if args.check and total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
