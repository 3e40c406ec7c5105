"""Run a real server process on 127.0.0.1 for a test module, and always stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from .record import read

TESTS = Path(__file__).resolve().parents[2]  # tests/: where `integrations.web_apps` is importable from


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(server: str, target: str, port: int) -> list[str]:
    """The command line a user would run, for ``server`` serving ``target`` (module:app)."""
    python = sys.executable
    if server == "uvicorn":
        return [
            python,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    if server == "granian":
        return [python, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--no-ws", "--log-level", "warning", target]  # fmt: skip
    if server == "gunicorn":
        return [python, "-m", "gunicorn", target, "--bind", f"127.0.0.1:{port}", "--workers", "2",
                "--worker-class", "gthread", "--threads", "8", "--log-level", "warning"]  # fmt: skip
    raise ValueError(server)


@contextmanager
def serve(server: str, target: str, workdir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``server`` serving ``target``; yield its base URL once ``/health`` answers; stop it."""
    port = free_port()
    log = open(workdir / f"{server}.log", "wb")  # noqa: SIM115 - closed below
    # Not measured by pytest-cov (its COV_CORE_* variables): tracing every request
    # of a server under load would only make the module slow.
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("COV_CORE_")}
    base_env["PYTHONPATH"] = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        command(server, target, port),
        cwd=TESTS,
        env={**base_env, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{server} exited with {process.returncode}: {read_log(workdir, server)}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server} did not answer within 30 s: {read_log(workdir, server)}")
            time.sleep(0.05)
        yield base
    finally:
        _stop(process)
        log.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its workers: its own session
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def read_log(workdir: Path, server: str) -> str:
    path = workdir / f"{server}.log"
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def wait_for(
    record: Path, done: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = 20
) -> list[dict[str, Any]]:
    """Poll the record file until ``done(entries)``; fail with what was seen after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        entries = read(record)
        if done(entries):
            return entries
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; recorded: {entries[-20:]}")
        time.sleep(0.02)


def outcomes(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Scope outcomes by origin (each origin is used once per test)."""
    return {entry["origin"]: entry for entry in entries if "origin" in entry}


def effects(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["effect"] for entry in entries if "effect" in entry]


class Server:
    """A running server the tests talk to, and the record its app writes (``record.py``)."""

    def __init__(self, kind: str, base: str, record: Path) -> None:
        self.kind = kind
        self.base = base
        self.record = record

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=20)

    def wait_for_origins(self, *origins: str) -> dict[str, dict[str, Any]]:
        """The outcomes of the scopes with these origins, once they have all ended."""
        entries = wait_for(
            self.record, lambda e: all(o in outcomes(e) for o in origins), f"scopes {origins} to end"
        )
        return outcomes(entries)

    def effects(self) -> list[str]:
        return effects(wait_for(self.record, lambda e: True, "the record"))
