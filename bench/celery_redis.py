"""Celery over the real Redis broker: 1,000 tasks through an airlock scope vs. 1,000 direct apply_async.

Both sides publish the same 1,000 messages to the same queue on Redis
(the database ``AIRLOCK_TEST_REDIS_URL`` names, queue ``airlock-exec-bench``);
no worker runs, the queue is purged between repetitions (outside the timed
part). Each repetition runs both sides back to back, alternating which goes
first; airlock's added cost is the median over repetitions of
``airlock / direct - 1`` (pairing keeps a shared machine's drift out of it;
target: <= 5%). A last row times airlock's own work alone: the same scope
with Celery's publish replaced by a no-op.

Run: ``.venv/bin/python bench/celery_redis.py`` (also part of ``make bench``).
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from typing import Any

TASKS = 1_000
REPEATS = 31
QUEUE = "airlock-exec-bench"


def _broker_url() -> str:
    # Only the database the URL names, and only the bench's own queue in it.
    return os.environ.get("AIRLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _direct(task: Any) -> float:
    started = time.perf_counter()
    for i in range(TASKS):
        task.apply_async((i,), {"note": "bench"})
    return time.perf_counter() - started


def _through_airlock(task: Any) -> float:
    import airlock
    from airlock.integrations.executors.celery import celery_executor

    started = time.perf_counter()
    with airlock.scope(executor=celery_executor):
        for i in range(TASKS):
            airlock.enqueue(task, i, note="bench")
    return time.perf_counter() - started


def _own_work(task: Any) -> float:
    """The airlock path with the publish stubbed out: what airlock itself adds."""
    real = task._get_current_object()
    real.apply_async = lambda args=None, kwargs=None, **options: None
    try:
        return statistics.median(_through_airlock(task) for _ in range(REPEATS))
    finally:
        del real.apply_async


def main() -> int:
    import redis
    from celery import Celery

    url = _broker_url()
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        print(f"skipped: Redis is not reachable at {url} ({exc})")
        return 0
    app = Celery("airlock_bench", broker=url, set_as_current=False)
    app.conf.update(task_default_queue=QUEUE, task_ignore_result=True)

    @app.task(name="airlock_bench.noop", shared=False)
    def noop(i: int, note: str) -> None:  # never runs: nothing consumes the queue
        return None

    def purge() -> None:
        client.delete(QUEUE)

    try:
        purge()
        _direct(noop), _through_airlock(noop)  # warm up connections and code paths
        purge()
        direct: list[float] = []
        ours: list[float] = []
        ratios: list[float] = []
        for repeat in range(REPEATS):
            order = [(_direct, direct), (_through_airlock, ours)]
            if repeat % 2:
                order.reverse()
            for run, into in order:
                gc.collect()
                into.append(run(noop))
                sent = client.llen(QUEUE)
                assert sent == TASKS, f"expected {TASKS} messages on the broker, found {sent}"
                purge()
            ratios.append(ours[-1] / direct[-1] - 1)
        own = _own_work(noop)
    finally:
        client.delete(QUEUE)
        client.close()
        app.close()

    d, o = statistics.median(direct), statistics.median(ours)
    added = statistics.median(ratios) * 100
    print(f"{TASKS:,} Celery tasks over Redis ({url}), median of {REPEATS} interleaved repetitions\n")
    print("| way | total | per task |")
    print("|---|---:|---:|")
    print(f"| direct apply_async | {d * 1e3:,.1f} ms | {d / TASKS * 1e6:,.1f} µs |")
    print(f"| airlock scope + celery_executor | {o * 1e3:,.1f} ms | {o / TASKS * 1e6:,.1f} µs |")
    print(f"| airlock's own work (publish stubbed) | {own * 1e3:,.1f} ms | {own / TASKS * 1e6:,.1f} µs |")
    print(f"\nairlock's added cost: {added:+.1f}% of direct (median of paired repetitions; target <= 5%)")
    print(f"airlock's own work: {own / d * 100:.1f}% of the direct time")
    print(f"  [{'x' if added <= 5.0 else ' '}] added cost <= 5%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
