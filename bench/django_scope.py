"""Django: what ``DjangoScope`` costs per intent, against a plain ``Scope`` and by hand.

Each row is the MARGINAL cost of one intent (enqueue + dispatch of a no-op
task through the default sync executor): the time of a unit of work with N
intents (10, then 100) minus the same unit of work with none, divided by N. So the cost of
the ``atomic()`` block itself (BEGIN/COMMIT on SQLite in memory) is left out
of every row, and the rows compare what each way of deferring adds per effect
(with 10 per unit, what the first effect sets up for the scope weighs more).

* plain ``Scope``, outside a transaction (the core's figure);
* ``DjangoScope`` outside a transaction (dispatches at exit);
* plain ``Scope`` inside ``atomic()`` (dispatches at exit: too early, but the
  reference cost);
* ``DjangoScope`` inside ``atomic()`` (dispatches after the commit);
* by hand: ``transaction.on_commit(lambda: task.delay(...))`` per effect, the
  pattern users write without airlock (``delay`` is a no-op here).

Target (issue 12): inside ``atomic()``, ``DjangoScope`` costs at most 2x a
plain ``Scope`` per intent.

Run: ``.venv/bin/python bench/django_scope.py`` (also part of ``make bench``).
"""

from __future__ import annotations

import gc
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

# Measure the checkout's src/, not whatever airlock is installed.
sys.path[0] = str(Path(__file__).resolve().parent.parent / "src")

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    INSTALLED_APPS=["airlock.integrations.django"],
    USE_TZ=True,
)
django.setup()

from django.db import connection, transaction  # noqa: E402

import airlock  # noqa: E402
from airlock.integrations.django import DjangoScope  # noqa: E402

REPEATS = 5


def noop(*args: object, **kwargs: object) -> None:
    pass


class _Task:
    """A stand-in for a Celery task: ``delay`` does nothing."""

    def delay(self, *args: object, **kwargs: object) -> None:
        pass


def _unit(scope_cls: type[airlock.Scope] | None, in_atomic: bool, n: int) -> Callable[[], None]:
    enqueue = airlock.enqueue
    if scope_cls is None:  # by hand
        task = _Task()
        on_commit = transaction.on_commit

        def by_hand() -> None:
            with transaction.atomic():
                for i in range(n):
                    on_commit(lambda i=i: task.delay(i))

        return by_hand

    def run() -> None:
        with scope_cls():
            for i in range(n):
                enqueue(noop, i)

    if not in_atomic:
        return run
    atomic = transaction.atomic

    def run_in_atomic() -> None:
        with atomic():
            run()

    return run_in_atomic


def _best_ns(func: Callable[[], None], units: int) -> float:
    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=3, number=number)) / number / units * 1e9


def marginal_ns(scope_cls: type[airlock.Scope] | None, in_atomic: bool, intents: int) -> float:
    full = _best_ns(_unit(scope_cls, in_atomic, intents), 1)
    empty = _best_ns(_unit(scope_cls, in_atomic, 0), 1)
    return (full - empty) / intents


ROWS: list[tuple[str, type[airlock.Scope] | None, bool]] = [
    ("plain Scope, no transaction", airlock.Scope, False),
    ("DjangoScope, no transaction", DjangoScope, False),
    ("plain Scope inside atomic() (dispatches too early)", airlock.Scope, True),
    ("DjangoScope inside atomic() (dispatches after commit)", DjangoScope, True),
    ("by hand: on_commit(lambda: task.delay()) inside atomic()", None, True),
]


def table(intents: int) -> float:
    """Print the table for ``intents`` per unit of work; return DjangoScope-in-atomic / plain-in-atomic."""
    samples: dict[str, list[float]] = {label: [] for label, _, _ in ROWS}
    for _ in range(REPEATS):  # interleaved, so drift on a shared machine hits every row alike
        for label, cls, in_atomic in ROWS:
            samples[label].append(marginal_ns(cls, in_atomic, intents))
    med = {label: statistics.median(values) for label, values in samples.items()}
    base = med["plain Scope, no transaction"]
    plain_atomic = med["plain Scope inside atomic() (dispatches too early)"]
    print(
        f"\n{intents} intents per unit of work (marginal cost per intent, median of {REPEATS} interleaved runs)\n"
    )
    print("| per intent | ns | / plain Scope (same place) |")
    print("|---|---:|---:|")
    for label, _, in_atomic in ROWS:
        ref = plain_atomic if in_atomic else base
        print(f"| {label} | {med[label]:,.0f} | {med[label] / ref:.2f}x |")
    return med["DjangoScope inside atomic() (dispatches after commit)"] / plain_atomic


def main() -> int:
    connection.ensure_connection()
    gc.collect()
    gc.disable()
    print(f"Django {django.get_version()}, SQLite in memory, Python {sys.version.split()[0]}")
    ratios = {n: table(n) for n in (10, 100)}
    gc.enable()
    print()
    for n, ratio in ratios.items():
        mark = "x" if ratio <= 2.0 else " "
        print(
            f"  [{mark}] {n} per unit: DjangoScope inside atomic() <= 2x a plain Scope per intent ({ratio:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
