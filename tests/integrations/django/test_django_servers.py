"""The Django integration under the servers users deploy it with (SPEC 5.4).

``serverproject`` runs in separate processes on 127.0.0.1 free ports: uvicorn
(ASGI) and gunicorn (WSGI), on PostgreSQL (``default``) and MariaDB
(``other``). Its middleware stack is a sync-only ``atomic()`` middleware
(like django-reversion's RevisionMiddleware) outside a ``process_exception``
middleware outside ``AirlockMiddleware``. Every task records, in the process
that runs it, whether a connection of its own could read the row the request
wrote: a dispatch before the commit shows up as ``saw_row: False``; one after
a rollback as a record that should not exist.

The scenarios run twice: with airlock (``airlock.enqueue`` under
``AirlockMiddleware``) and with Celery's own ``delay_on_commit``
(``celery.contrib.django.task.DjangoTask``, eager, so the record shows when
Celery would have sent the task). The docs' comparison table
(docs/integrations/django.md) is these tests' outcomes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest

from integrations.web_apps.server import free_port
from services import require_service

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
WAIT = 15.0  # seconds: the bound on every wait here


@pytest.fixture(scope="module")
def project_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The server project's environment, with both databases migrated."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="serverproject.settings",
        PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
        AIRLOCK_TEST_POSTGRES_URL=require_service("postgres"),
        AIRLOCK_TEST_MYSQL_URL=require_service("mysql"),
        AIRLOCK_SERVER_RECORD=str(tmp_path_factory.mktemp("server") / "record.jsonl"),
    )
    for alias in ("default", "other"):
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "-v0", "--database", alias],
            env=env,
            cwd=HERE,
            check=True,
            timeout=120,
        )
    return env


def _command(server: str, port: int) -> list[str]:
    if server == "uvicorn":
        return [
            str(VENV_BIN / "uvicorn"),
            "serverproject.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    return [
        str(VENV_BIN / "gunicorn"),
        "serverproject.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--log-level",
        "warning",
    ]


@pytest.fixture(scope="module", params=["uvicorn", "gunicorn"])
def server(request: pytest.FixtureRequest, project_env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """A running server process: ``(name, port)``. Stopped at the end of the module, even on failure."""
    port = free_port()
    process = subprocess.Popen(_command(request.param, port), env=project_env, cwd=HERE)
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if _get(port, "/health/")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{request.param} did not start (exit code {process.poll()})")
            time.sleep(0.1)
        yield request.param, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _get(port: int, path: str, **headers: str) -> tuple[int, str]:
    connection = HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        connection.request("GET", path, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def _records(env: dict[str, str]) -> list[dict[str, Any]]:
    path = Path(env["AIRLOCK_SERVER_RECORD"])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _runs_of(env: dict[str, str], label: str) -> list[dict[str, Any]]:
    return [r for r in _records(env) if r["label"] == label]


def _wait_for(env: dict[str, str], label: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT
    while not (runs := _runs_of(env, label)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return runs


def _label(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


VIA = pytest.mark.parametrize("via", ["airlock", "delay-on-commit"])


def _q(via: str) -> str:
    return "" if via == "airlock" else f"?via={via}"


@VIA
def test_outer_sync_atomic_middleware_commit_sends_after_the_commit(
    server: tuple[str, int], project_env: dict[str, str], via: str
) -> None:
    name, port = server
    label = _label(f"{name}-{via}-commit")
    assert _get(port, f"/write/{label}/{_q(via)}") == (200, "written")
    # Both run in the server process before the response leaves.
    runs = _runs_of(project_env, label)
    assert len(runs) == 1, runs
    assert runs[0]["saw_row"] is True, "sent before the outer transaction committed"
    assert runs[0]["pid"] != os.getpid()


@VIA
def test_outer_sync_atomic_middleware_rollback_sends_nothing(
    server: tuple[str, int], project_env: dict[str, str], via: str
) -> None:
    name, port = server
    label = _label(f"{name}-{via}-rollback")
    assert _get(port, f"/write/{label}/{_q(via)}", X_Rollback="1") == (200, "written")
    assert _runs_of(project_env, label) == []


@VIA
def test_savepoint_rollback_drops_only_that_savepoints_effect(
    server: tuple[str, int], project_env: dict[str, str], via: str
) -> None:
    name, port = server
    label = _label(f"{name}-{via}-savepoint")
    assert _get(port, f"/savepoint/{label}/{_q(via)}") == (200, "saved")
    runs = _runs_of(project_env, label)
    assert len(runs) == 1 and runs[0]["saw_row"] is True, runs
    assert _runs_of(project_env, f"{label}-rolled-back") == []


@VIA
def test_a_view_that_raised_when_process_exception_makes_it_a_200(
    server: tuple[str, int], project_env: dict[str, str], via: str
) -> None:
    """The view raised; a middleware's process_exception answered 200, so the outer
    block committed the row. airlock discards the request's effects (the view
    failed); Celery's on_commit callback is sent with the commit."""
    name, port = server
    label = _label(f"{name}-{via}-raised")
    assert _get(port, f"/raise/{label}/{_q(via)}") == (200, "handled")
    runs = _runs_of(project_env, label)
    if via == "airlock":
        assert runs == []
    else:
        assert len(runs) == 1 and runs[0]["saw_row"] is True, runs


@VIA
def test_open_atomic_on_another_database(
    server: tuple[str, int], project_env: dict[str, str], via: str
) -> None:
    """The block around the request is on ``other`` (MariaDB); the request's scope
    uses ``default``. airlock waits for the block's commit (and drops the effect on
    rollback); Celery's ``delay_on_commit`` registers on ``default``, which is not in
    a transaction, so it sends at once: before the commit, and even on rollback."""
    name, port = server
    committed, rolled_back = _label(f"{name}-{via}-other"), _label(f"{name}-{via}-other-rb")
    assert _get(port, f"/write/{committed}/{_q(via)}", X_Atomic_Using="other")[0] == 200
    assert _get(port, f"/write/{rolled_back}/{_q(via)}", X_Atomic_Using="other", X_Rollback="1")[0] == 200
    runs, rb_runs = _runs_of(project_env, committed), _runs_of(project_env, rolled_back)
    assert len(runs) == 1 and runs[0]["alias"] == "other", runs
    if via == "airlock":
        assert runs[0]["saw_row"] is True, "sent before the MariaDB transaction committed"
        assert rb_runs == []
    else:
        assert runs[0]["saw_row"] is False  # sent before the commit
        assert len(rb_runs) == 1 and rb_runs[0]["saw_row"] is False  # sent for a rolled-back row


@VIA
def test_client_disconnect_during_a_sync_view(
    server: tuple[str, int], project_env: dict[str, str], via: str
) -> None:
    """ASGI: the client hangs up while the view sleeps inside atomic(). The effect
    asked for inside the block that then commits is sent after the commit (both);
    the one asked for outside any transaction is discarded with the request by
    airlock, and sent at once by Celery (on_commit outside a transaction)."""
    name, port = server
    if name != "uvicorn":
        pytest.skip("WSGI servers do not tell the application that the client left")
    label = _label(f"disconnect-{via}")
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        query = f"?pause=1.5&via={via}"
        sock.sendall(
            f"GET /disconnect/{label}/{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-No-Atomic: 1\r\n\r\n".encode()
        )
        time.sleep(0.5)  # the view is inside its atomic block now
    runs = _wait_for(project_env, label)
    assert len(runs) == 1 and runs[0]["saw_row"] is True, runs
    untied = _runs_of(project_env, f"{label}-untied")
    assert untied == [] if via == "airlock" else len(untied) == 1


def test_orm_writing_executor_django_tasks_db(server: tuple[str, int], project_env: dict[str, str]) -> None:
    """django-tasks' database backend: the executor writes the task row at dispatch (an ORM
    write, which must happen on a sync thread under ASGI, after the commit); a real
    ``db_worker`` process runs it."""
    name, port = server
    committed, rolled_back = _label(f"{name}-tasksdb"), _label(f"{name}-tasksdb-rb")
    assert _get(port, f"/write/{committed}/?via=tasks-db") == (200, "written")
    assert _get(port, f"/write/{rolled_back}/?via=tasks-db", X_Rollback="1") == (200, "written")
    subprocess.run(
        [sys.executable, "-m", "django", "db_worker", "--batch", "--no-startup-delay", "-v0"],
        env=project_env,
        cwd=HERE,
        check=True,
        timeout=60,
    )
    runs = _runs_of(project_env, committed)
    assert len(runs) == 1 and runs[0]["saw_row"] is True, runs
    assert _runs_of(project_env, rolled_back) == []
