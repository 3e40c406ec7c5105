"""Start and stop a real ``celery -A integrations.celery_worker.app worker`` process.

The worker runs the module :mod:`integrations.celery_worker.app` on a private
queue; what its tasks observe lands in Redis, which :class:`Worker` reads
back. Every wait is a bounded poll.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery

TESTS_DIR = Path(__file__).resolve().parents[2]
START_TIMEOUT = 45.0


class WorkerFailed(AssertionError):
    pass


@dataclass
class Worker:
    """A running worker process, a client app on the same broker, and what the tasks reported."""

    broker_kind: str
    pool: str
    prefix: str
    client: Celery
    results: redis.Redis
    process: subprocess.Popen[bytes]
    log_path: Path
    sent_controls: list[str] = field(default_factory=list)

    @property
    def queue(self) -> str:
        return self.prefix

    def _read(self, key: str) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.results.lrange(f"{self.prefix}:{key}", 0, -1)]

    def records(self) -> list[dict[str, Any]]:
        """Every ``record`` run so far, in the order the worker ran them."""
        return self._read("results")

    def runs(self) -> list[dict[str, Any]]:
        """Every parent/fan_out run so far, reported after its scope ended."""
        return self._read("runs")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if self.process.poll() is not None:
                raise WorkerFailed(
                    f"the worker exited ({self.process.returncode}) while waiting for {what}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise WorkerFailed(
                    f"timed out after {timeout}s waiting for {what}; worker log:\n{self.log()[-4000:]}"
                )
            time.sleep(0.05)

    def values(self, prefix: str = "") -> list[Any]:
        return [r["value"] for r in self.records() if str(r["value"]).startswith(prefix)]

    def settle(self) -> None:
        """Return once the worker ran everything queued before this call.

        The worker takes one message at a time (concurrency 1, prefetch 1), in
        queue order: once a control message queued now has run, any message
        that was queued earlier has run too.
        """
        control = f"control-{uuid.uuid4().hex[:8]}"
        self.client.send_task(
            "worker_app.record", args=(control,), kwargs={"tag": "control"}, queue=self.queue
        )
        self.wait_until(lambda: control in self.values("control-"), f"control message {control}")

    def queue_size(self) -> int:
        with self.client.connection_for_write() as conn:
            declared = conn.default_channel.queue_declare(queue=self.queue, durable=True, auto_delete=False)
            return int(declared.message_count)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # warm shutdown, as a deployment stops it
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the worker and its pool children
        process.wait(timeout=10)


@contextmanager
def running_worker(broker_kind: str, broker_url: str, results_url: str, pool: str) -> Iterator[Worker]:
    """A worker process with ``--pool pool`` on ``broker_url``; stopped (and its queue removed) after."""
    prefix = f"airlock-celery-{broker_kind}-{pool}-{uuid.uuid4().hex[:8]}"
    results = redis.Redis.from_url(results_url)
    # Not the Django test settings pytest-django exported: Celery's Django
    # fixup would set Django up, and its AIRLOCK settings would win.
    env = {
        **{name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"},
        "AIRLOCK_CELERY_BROKER": broker_url,
        "AIRLOCK_CELERY_RESULTS": results_url,
        "AIRLOCK_CELERY_PREFIX": prefix,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])),
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    command = [
        sys.executable, "-m", "celery", "-A", "integrations.celery_worker.app", "worker",
        "--pool", pool, "--concurrency", "1", "--queues", prefix, "--hostname", f"{prefix}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING",
    ]  # fmt: skip
    log = tempfile.NamedTemporaryFile(prefix=f"{prefix}-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = Celery("airlock_worker_client", broker=broker_url, backend=results_url, set_as_current=False)
    client.conf.update(task_default_queue=prefix, task_ignore_result=True, result_expires=300)
    worker = Worker(broker_kind, pool, prefix, client, results, process, Path(log.name))
    try:
        worker.wait_until(
            lambda: results.get(f"{prefix}:ready"), "the worker to be ready", timeout=START_TIMEOUT
        )
        yield worker
    finally:
        try:
            _stop(process)
        finally:
            log.close()
            if broker_kind == "amqp":
                with client.connection_for_write() as conn:
                    conn.default_channel.queue_delete(queue=prefix)
            else:
                # the Redis broker's queue and bindings
                results.delete(prefix, f"_kombu.binding.{prefix}", f"_kombu.binding_permanent.{prefix}")
            for key in results.scan_iter(f"{prefix}:*"):
                results.delete(key)
            client.close()
            results.close()
            Path(log.name).unlink(missing_ok=True)
