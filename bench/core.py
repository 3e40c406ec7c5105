"""Core micro-benchmarks, run in whichever environment imports ``airlock``.

``bench/run.py`` runs this file alternately under our package and under the
published airlock-py 0.1.0a2 (in its own virtualenv), so both see the same
machine state; it prints one JSON object of per-scenario timings (ns) and
the bytes held per buffered intent. The raw baseline does the same work by
hand: an ``enqueue`` function appending ``(func, args, kwargs)`` tuples to a
plain list, then a loop calling them.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import timeit
import tracemalloc

import airlock


def noop(*args: object, **kwargs: object) -> None:
    pass


def scenarios() -> dict[str, tuple[object, int]]:
    """name -> (zero-argument callable, units of work per call)."""
    enqueue, scope = airlock.enqueue, airlock.scope

    def ten_intents() -> None:
        with scope():
            for i in range(10):
                enqueue(noop, i)

    def ten_intents_kw() -> None:
        with scope():
            for i in range(10):
                enqueue(noop, i, order_id=i)

    def empty_scope() -> None:
        with scope():
            pass

    def ten_thousand() -> None:
        with scope():
            for i in range(10_000):
                enqueue(noop, i)

    return {
        "per_intent_10": (ten_intents, 10),
        "per_intent_10_kw": (ten_intents_kw, 10),
        "empty_scope": (empty_scope, 1),
        "per_intent_10000": (ten_thousand, 10_000),
    }


def raw_scenarios() -> dict[str, tuple[object, int]]:
    def make() -> tuple[object, object]:
        buffer: list[tuple[object, tuple[object, ...], dict[str, object]]] = []

        def enqueue(func: object, *args: object, **kwargs: object) -> None:
            buffer.append((func, args, kwargs))

        def flush() -> None:
            for func, args, kwargs in buffer:
                func(*args, **kwargs)  # type: ignore[operator]
            buffer.clear()

        return enqueue, flush

    def ten_intents() -> None:
        enqueue, flush = make()
        for i in range(10):
            enqueue(noop, i)
        flush()

    def ten_intents_kw() -> None:
        enqueue, flush = make()
        for i in range(10):
            enqueue(noop, i, order_id=i)
        flush()

    def ten_thousand() -> None:
        enqueue, flush = make()
        for i in range(10_000):
            enqueue(noop, i)
        flush()

    return {
        "per_intent_10": (ten_intents, 10),
        "per_intent_10_kw": (ten_intents_kw, 10),
        "per_intent_10000": (ten_thousand, 10_000),
    }


def time_ns(func: object, units: int, budget: float = 0.2) -> float:
    """Best-of-5 CPU time per unit, in ns (best: the least disturbed by noise).

    CPU time of this process (``time.process_time``), not wall time: the
    machines are shared, and time spent waiting for a core is not ours.
    """
    timer = timeit.Timer(func, timer=time.process_time)  # type: ignore[arg-type]
    number, _ = timer.autorange()
    number = max(1, int(number * budget / 0.2))
    return min(timer.repeat(repeat=5, number=number)) / number / units * 1e9


def bytes_per_intent(count: int = 10_000) -> float:
    """Memory held by the scope per buffered intent (arguments excluded)."""
    args = list(range(1000, 1000 + count))  # created before measuring: user data
    gc.collect()
    with airlock.scope(policy=airlock.DropAll()):
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for value in args:
            airlock.enqueue(noop, value)
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
    return held / count


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "airlock"
    table = raw_scenarios() if which == "raw" else scenarios()
    result = {name: time_ns(func, units) for name, (func, units) in table.items()}
    if which != "raw":
        result["bytes_per_intent"] = bytes_per_intent()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
