"""``make bench``: airlock vs. a raw baseline vs. the published airlock-py 0.1.0a2.

Each round runs ``bench/core.py`` three times, in a rotating order, as
separate processes: under this checkout, under airlock-py 0.1.0a2 (installed
from PyPI into ``bench/.peer-venv``), and the raw baseline. The table reports
the median of the rounds for each, and the ratios, measured side by side in
one run on the same (shared, noisy) machine. Then the integration benchmarks
(Celery over Redis, the outbox relay) run if their services answer.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".peer-venv"
PEER_SPEC = "airlock-py==0.1.0a2"
ROUNDS = 7


def peer_python() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not (PEER_VENV / ".installed").exists():
        print(f"setting up {PEER_VENV} with {PEER_SPEC} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(PEER_VENV)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PEER_SPEC], check=True)
        (PEER_VENV / ".installed").touch()
    return python


def run_core(python: str, *args: str) -> dict[str, float]:
    # The peer runs from an empty directory so it cannot import our src/.
    out = subprocess.run(
        [python, str(HERE / "core.py"), *args], check=True, capture_output=True, text=True, cwd="/"
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    ours_py, peer_py = sys.executable, str(peer_python())
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "peer": [], "raw": []}
    jobs = [("ours", ours_py, ()), ("peer", peer_py, ()), ("raw", ours_py, ("raw",))]
    for round_ in range(ROUNDS):
        shift = round_ % len(jobs)
        for name, python, args in jobs[shift:] + jobs[:shift]:
            runs[name].append(run_core(python, *args))
        print(f"round {round_ + 1}/{ROUNDS} done", file=sys.stderr, flush=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    rows = [
        ("enqueue(task, i) + flush, per intent (10 per scope)", "per_intent_10", "ns"),
        ("enqueue(task, i, order_id=i) + flush, per intent (10 per scope)", "per_intent_10_kw", "ns"),
        ("empty scope enter + exit", "empty_scope", "ns"),
        ("enqueue + flush, per intent (10,000 per scope)", "per_intent_10000", "ns"),
        ("bytes held per buffered intent", "bytes_per_intent", "B"),
    ]
    print(
        f"\nmedians of {ROUNDS} interleaved rounds (each: best of 5 repeats, CPU time), "
        f"Python {sys.version.split()[0]}\n"
    )
    print("| measure | airlock (this) | airlock-py 0.1.0a2 | raw list | 0.1.0a2 / this | this / raw |")
    print("|---|---:|---:|---:|---:|---:|")
    results: dict[str, tuple[float, float, float | None]] = {}
    for label, key, unit in rows:
        ours, peer = median("ours", key), median("peer", key)
        raw = median("raw", key) if key in runs["raw"][0] else None
        results[key] = (ours, peer, raw)
        raw_cell = f"{raw:,.0f} {unit}" if raw is not None else "–"
        vs_raw = f"{ours / raw:.2f}×" if raw is not None else "–"
        print(
            f"| {label} | {ours:,.0f} {unit} | {peer:,.0f} {unit} | {raw_cell} | {peer / ours:.2f}× | {vs_raw} |"
        )

    ours, peer, raw = results["per_intent_10"]
    kw_ours, kw_peer, kw_raw = results["per_intent_10_kw"]
    checks = [
        ("per intent >= 3x faster than 0.1.0a2", peer / ours >= 3.0),
        ("per intent within 3x of raw", raw is not None and ours / raw <= 3.0),
        ("per intent, keyword arguments, >= 3x faster than 0.1.0a2", kw_peer / kw_ours >= 3.0),
        ("per intent, keyword arguments, within 3x of raw", kw_raw is not None and kw_ours / kw_raw <= 3.0),
        (
            "empty scope >= 2.5x faster than 0.1.0a2",
            results["empty_scope"][1] / results["empty_scope"][0] >= 2.5,
        ),
        (
            "<= 50% of 0.1.0a2's bytes per intent",
            results["bytes_per_intent"][0] <= 0.5 * results["bytes_per_intent"][1],
        ),
    ]
    print()
    for label, ok in checks:
        print(f"  [{'x' if ok else ' '}] {label}")

    if "--core-only" in sys.argv:
        return 0
    for module in ("celery_redis", "outbox", "django_scope"):
        path = HERE / f"{module}.py"
        if path.exists():
            print(f"\n## {module}\n", flush=True)
            subprocess.run([sys.executable, str(path)], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
