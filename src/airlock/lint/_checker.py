"""AIR001: find calls that hand a task to a queue directly, bypassing airlock.

The checker reads one module's AST (never strings or comments) and reports:

* ``app.send_task(...)`` (Celery, a task sent by name) on any receiver but
  ``self``/``cls``/``super()`` inside a class that defines ``send_task`` itself;
* ``X.delay(...)``, ``X.apply_async(...)`` (Celery) and
  ``X.send_with_options(...)`` (Dramatiq), unless ``X`` is provably something
  else: ``self``/``cls``/``super()`` inside a class that defines that method
  itself, a literal, or a name bound in the same function or module only to a
  ``CamelCase(...)`` instance (that is not a Celery canvas such as
  ``Signature``) or to a literal, or a parameter annotated with a type whose
  name does not look like a task, signature or actor, or (for ``apply_async``)
  a name ending in ``pool``: a process or thread pool's own method;
* ``X.send(...)`` (Dramatiq) and ``X.schedule(...)`` (Huey) only when ``X``
  is known to be a task: a function decorated in the same module with a task
  or actor decorator (``@app.task``, ``@shared_task``, ``@dramatiq.actor``,
  ``@huey.task()``, ``@db_task()``...), a name imported from a module called
  ``tasks`` or ``actors``, or an attribute of such a module;
* ``f(...)`` when ``f`` is a Huey task of the same module (calling a Huey task
  enqueues it): decorated by ``@<h>.task()``/``@<h>.periodic_task()`` where
  ``<h> = SomethingHuey(...)`` in that module, or by the ``huey.contrib.djhuey``
  decorators.

Calling an imported Huey task directly is not reported (from one module the
checker cannot tell it from a plain function), nor is a Celery task called
like a function (that runs it in-process; it does not enqueue).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

CODE = "AIR001"

#: Methods that dispatch a task and are named distinctively enough to flag
#: unless the receiver is provably something else.
DISTINCTIVE = frozenset({"delay", "apply_async", "send_with_options"})
#: Methods of an application that send a task by name: flagged on any receiver (an app
#: is usually ``app = Celery(...)``, which would otherwise look like a plain instance).
BY_NAME = frozenset({"send_task"})
#: Methods with common names, flagged only on receivers known to be tasks.
ONLY_ON_TASKS = frozenset({"send", "schedule"})
#: Decorator (or factory) names that turn a function into a task or actor.
TASK_DECORATORS = frozenset(
    {"task", "shared_task", "actor", "periodic_task", "db_task", "db_periodic_task", "lock_task"}
)
HUEY_CONTRIB = "huey.contrib.djhuey"
#: Last part of the module names whose attributes are taken to be tasks.
TASK_MODULES = frozenset({"tasks", "actors"})
#: Callables (and annotation words) that produce or denote task-like objects.
TASKLIKE_WORDS = ("task", "signature", "actor", "message", "chain", "group", "chord", "chunks", "any", "xmap")


@dataclass(frozen=True, order=True)
class Violation:
    """One AIR001 finding: 1-based ``line``, 0-based ``col``, and the message."""

    line: int
    col: int
    message: str

    @property
    def text(self) -> str:
        """The message with its code, as flake8 and the CLI print it."""
        return f"{CODE} {self.message}"


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _callee_name(node: ast.expr) -> str | None:
    """The last name of a decorator/callee: ``app.task(bind=True)`` -> ``task``."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _is_tasklike_word(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in TASKLIKE_WORDS)


def _is_plain_instance(value: ast.expr) -> bool:
    """A literal, or ``CamelCase(...)`` that is not a Celery canvas/task class."""
    if isinstance(value, (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.JoinedStr)):
        return True
    if isinstance(value, ast.Call):
        name = _callee_name(value.func)
        return name is not None and name[:1].isupper() and not _is_tasklike_word(name)
    return False


class _ModuleFacts(ast.NodeVisitor):
    """What the module says about its names: tasks, Huey tasks, task modules."""

    def __init__(self) -> None:
        self.tasks: set[str] = set()
        self.huey_tasks: set[str] = set()
        self.huey_instances: set[str] = set()
        self.huey_decorators: set[str] = set()  # names imported from huey.contrib.djhuey
        self.task_modules: set[str] = set()  # names/dotted paths bound to a tasks module

    def collect(self, tree: ast.AST) -> _ModuleFacts:
        # Huey instances and imports first: decorators refer to them.
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                name = _callee_name(node.value.func)
                if name and name.endswith("Huey"):
                    self.huey_instances.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.ImportFrom):
                self._import_from(node)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.rpartition(".")[2] in TASK_MODULES:
                        self.task_modules.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for decorator in node.decorator_list:
                    self._decorated(node.name, decorator)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and node.value.args:
                # send_email = app.task(_send_email)
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self._decorated(target.id, node.value.func)
        return self

    def _import_from(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            bound = alias.asname or alias.name
            if module == HUEY_CONTRIB and alias.name in TASK_DECORATORS:
                self.huey_decorators.add(bound)
            elif alias.name in TASK_MODULES:
                self.task_modules.add(bound)  # from myapp import tasks
            elif module.rpartition(".")[2] in TASK_MODULES:
                self.tasks.add(bound)  # from myapp.tasks import send_email

    def _decorated(self, name: str, decorator: ast.expr) -> None:
        callee = decorator.func if isinstance(decorator, ast.Call) else decorator
        last = _callee_name(callee)
        if last not in TASK_DECORATORS:
            return
        self.tasks.add(name)
        owner = callee.value if isinstance(callee, ast.Attribute) else None
        if isinstance(owner, ast.Name) and owner.id in self.huey_instances and last != "lock_task":
            self.huey_tasks.add(name)
        elif isinstance(callee, ast.Name) and callee.id in self.huey_decorators:
            self.huey_tasks.add(name)

    def is_task(self, receiver: ast.expr) -> bool:
        dotted = _dotted(receiver)
        if dotted is None:
            return False
        if dotted in self.tasks:
            return True
        module, _, _ = dotted.rpartition(".")
        return bool(module) and module in self.task_modules


class _Checker(ast.NodeVisitor):
    """Walks the module keeping track of classes and local bindings."""

    def __init__(self, facts: _ModuleFacts, module: ast.Module) -> None:
        self.facts = facts
        self.found: list[Violation] = []
        self.class_methods: list[set[str]] = []
        # One dict per function (and the module): name -> is every binding a plain object?
        self.bindings: list[dict[str, bool]] = [_plain_bindings(module.body, ())]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        methods = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))} | {
            t.id for n in node.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
        }
        self.class_methods.append(methods)
        self.generic_visit(node)
        self.class_methods.pop()

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.bindings.append(_plain_bindings(node.body, _all_args(node.args)))
        self.generic_visit(node)
        self.bindings.pop()

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            method, receiver = func.attr, func.value
            if method in BY_NAME and not self._own_method(receiver, method):
                self._report_by_name(func, method, receiver, node)
            elif (method in DISTINCTIVE and not self._unrelated(receiver, method)) or (
                method in ONLY_ON_TASKS and self.facts.is_task(receiver)
            ):
                self._report(func, method, receiver)
        elif isinstance(func, ast.Name) and func.id in self.facts.huey_tasks and not self._shadowed(func.id):
            self.found.append(
                Violation(
                    node.lineno,
                    node.col_offset,
                    f"calling the Huey task {func.id}() enqueues it directly, bypassing airlock; "
                    f"use airlock.enqueue({func.id}, ...)",
                )
            )
        self.generic_visit(node)

    def _shadowed(self, name: str) -> bool:
        # A local variable or parameter of the same name hides the task.
        return any(name in scope for scope in self.bindings[1:])

    def _own_method(self, receiver: ast.expr, method: str) -> bool:
        """``self.m()``/``cls.m()``/``super().m()`` in a class that defines ``m`` itself."""
        return _is_self(receiver) and bool(self.class_methods) and method in self.class_methods[-1]

    def _unrelated(self, receiver: ast.expr, method: str) -> bool:
        if _is_self(receiver):
            return self._own_method(receiver, method)
        if _is_plain_instance(receiver):
            return True
        if method == "apply_async" and _names_a_pool(receiver):
            return True
        if isinstance(receiver, ast.Name):
            for scope in reversed(self.bindings):
                if receiver.id in scope:
                    return scope[receiver.id]
        return False

    def _report(self, func: ast.Attribute, method: str, receiver: ast.expr) -> None:
        dotted = _dotted(receiver)
        shown, target = (dotted, dotted) if dotted else ("(...)", "task")
        hint = (
            ", _dispatch_options={...}" if method in ("apply_async", "send_with_options", "schedule") else ""
        )
        self._add(
            func,
            method,
            f"direct {shown}.{method}() bypasses airlock; use airlock.enqueue({target}, ...{hint})",
        )

    def _report_by_name(self, func: ast.Attribute, method: str, receiver: ast.expr, call: ast.Call) -> None:
        app = _dotted(receiver) or "app"
        first = call.args[0] if call.args else None
        name = (
            repr(first.value) if isinstance(first, ast.Constant) and isinstance(first.value, str) else "name"
        )
        self._add(
            func,
            method,
            f"direct {app}.{method}() bypasses airlock; use airlock.enqueue({app}.signature({name}), ...)",
        )

    def _add(self, func: ast.Attribute, method: str, message: str) -> None:
        # Point at the method name: on a chained multi-line call that is the
        # line a reader (and a noqa comment) looks at.
        line = func.end_lineno or func.lineno
        col = (func.end_col_offset or 0) - len(method)
        self.found.append(Violation(line, max(col, 0), message))


def _names_a_pool(receiver: ast.expr) -> bool:
    """``pool``, ``self._pool``, ``thread_pool``...: a process or thread pool's own
    ``apply_async`` (multiprocessing, gevent, billiard), not a task."""
    dotted = _dotted(receiver)
    return dotted is not None and dotted.rpartition(".")[2].lower().rstrip("_").endswith("pool")


def _is_self(receiver: ast.expr) -> bool:
    """``self``, ``cls`` or ``super()``."""
    if isinstance(receiver, ast.Name):
        return receiver.id in ("self", "cls")
    return isinstance(receiver, ast.Call) and _callee_name(receiver.func) == "super"


def _all_args(args: ast.arguments) -> tuple[ast.arg, ...]:
    return (*args.posonlyargs, *args.args, *args.kwonlyargs, *(a for a in (args.vararg, args.kwarg) if a))


def _annotation_is_plain(note: ast.expr) -> bool:
    """Whether an annotation only names types that are not tasks, signatures or actors."""
    if isinstance(note, ast.Constant):
        if note.value is None:
            return True
        if isinstance(note.value, str):  # a forward reference: "Backoff"
            try:
                return _annotation_is_plain(ast.parse(note.value, mode="eval").body)
            except SyntaxError:
                return False
        return False
    if isinstance(note, ast.BinOp) and isinstance(note.op, ast.BitOr):
        return _annotation_is_plain(note.left) and _annotation_is_plain(note.right)
    if isinstance(note, ast.Subscript):
        if _callee_name(note.value) in ("Optional", "Union"):
            parts = note.slice.elts if isinstance(note.slice, ast.Tuple) else [note.slice]
            return all(_annotation_is_plain(p) for p in parts)
        note = note.value
    name = _callee_name(note)
    return name is not None and not _is_tasklike_word(name)


def _plain_bindings(body: list[ast.stmt], params: tuple[ast.arg, ...]) -> dict[str, bool]:
    """Names bound directly in ``body`` (not in nested functions/classes) and whether all
    their bindings are plain (non-task) objects."""
    plain: dict[str, bool] = {}
    for param in params:
        # An annotation naming non-task types proves it; no annotation proves nothing.
        plain[param.arg] = param.annotation is not None and _annotation_is_plain(param.annotation)

    def bind(target: ast.expr, is_plain: bool) -> None:
        if isinstance(target, ast.Name):
            plain[target.id] = plain.get(target.id, True) and is_plain
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                bind(element, False)

    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            plain[node.name] = False
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Assign):
            for target in node.targets:
                bind(target, _is_plain_instance(node.value))
        elif isinstance(node, ast.AnnAssign):
            bind(node.target, node.value is not None and _is_plain_instance(node.value))
        elif isinstance(node, (ast.AugAssign, ast.For, ast.AsyncFor)):
            bind(node.target, False)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    bind(item.optional_vars, False)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                plain[(alias.asname or alias.name).partition(".")[0]] = False
        elif isinstance(node, ast.NamedExpr):
            bind(node.target, _is_plain_instance(node.value))
        stack.extend(ast.iter_child_nodes(node))
    return plain


def find_violations(tree: ast.Module) -> list[Violation]:
    """Every AIR001 finding in a parsed module, in source order (noqa not applied)."""
    facts = _ModuleFacts().collect(tree)
    checker = _Checker(facts, tree)
    checker.visit(tree)
    return sorted(checker.found)


def iter_violations(tree: ast.Module) -> Iterator[Violation]:
    """Like `find_violations()`, lazily (for the flake8 plugin)."""
    yield from find_violations(tree)
