"""The clean-environment extras matrix: does every extra work on its own?

Builds the wheel once, then for the bare package and for each extra declared in
pyproject.toml: a fresh virtualenv, a real ``pip install "<wheel>[extra]"``
(dependencies resolved from the index, the pip cache reused), and a check that
imports that integration and uses it a little. The bare install also checks
that every integration refuses to import with the ``pip install "airlock-py[...]"``
hint. Run by ``.ci/run`` (``make extras``); prints one line per extra and a
summary, exits non-zero on the first broken extra's details.

Usage: python .ci/extras.py [EXTRA ...]   (default: every extra, plus the bare install)
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Two at a time: most of an install is waiting on the index and on unpacking.
PARALLEL = int(os.environ.get("AIRLOCK_EXTRAS_JOBS", "2"))

# Django, configured the way a project would, for the extras that need the app registry.
DJANGO_SETUP = """
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS={apps!r},
    DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}},
    {extra}
)
django.setup()
"""

SQLALCHEMY_SYNC = """
import importlib.util
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
import airlock
from airlock.integrations.sqlalchemy import SQLAlchemyScope
from airlock.outbox import OutboxScope
ran = []
engine = create_engine("sqlite://")
with Session(engine) as session:
    with airlock.scope(_cls=SQLAlchemyScope, session=session):
        session.execute(text("select 1"))
        airlock.enqueue(ran.append, "committed")
        assert ran == []
    session.commit()
assert ran == ["committed"], ran
print("greenlet installed:", importlib.util.find_spec("greenlet") is not None)
"""

# What each extra must make work. Keys are pyproject.toml's extras.
CHECKS: dict[str, str] = {
    "django": DJANGO_SETUP.format(
        apps=["django.contrib.contenttypes", "airlock.integrations.django", "airlock.outbox.django"], extra=""
    )
    + """
from django.core.management import call_command
import airlock
from airlock.integrations.django import AirlockMiddleware, DjangoScope
from airlock.outbox.django import DjangoOutboxScope
call_command("check")
with airlock.scope() as scope:
    pass
assert type(scope) is DjangoScope, type(scope)
""",
    "celery": """
from celery import Celery
import airlock
from airlock.integrations.celery import LegacyTaskShim, install_global_intercept
from airlock.integrations.executors.celery import celery_executor
app = Celery("extras", set_as_current=False)
app.conf.task_always_eager = True
@app.task
def add(x, y):
    return x + y
with airlock.scope(executor=celery_executor):
    airlock.enqueue(add, 1, 2)
""",
    "dramatiq": """
import dramatiq
from dramatiq.brokers.stub import StubBroker
import airlock
from airlock.integrations.executors.dramatiq import dramatiq_executor
broker = StubBroker()
@dramatiq.actor(broker=broker)
def noop(x):
    pass
with airlock.scope(executor=dramatiq_executor):
    airlock.enqueue(noop, 1)
assert broker.queues["default"].qsize() == 1
""",
    "huey": """
from huey import MemoryHuey
import airlock
from airlock.integrations.executors.huey import huey_executor
huey = MemoryHuey(immediate=False)
@huey.task()
def noop(x):
    pass
with airlock.scope(executor=huey_executor):
    airlock.enqueue(noop, 1)
assert huey.pending_count() == 1
""",
    "django-q": DJANGO_SETUP.format(
        apps=["django.contrib.contenttypes", "django_q"],
        extra='Q_CLUSTER={"name": "extras", "orm": "default", "timeout": 60, "retry": 120},',
    )
    + "from airlock.integrations.executors.django_q import django_q_executor\n",
    "django-tasks": DJANGO_SETUP.format(apps=["django.contrib.contenttypes", "django_tasks"], extra="")
    + "from airlock.integrations.executors.django_tasks import django_tasks_executor\n",
    "rq": """
from redis import Redis
import airlock
from airlock.integrations.executors.rq import rq_executor
""",
    "asgi": """
import asyncio
import airlock
from airlock.integrations.asgi import AirlockMiddleware
ran = []
async def app(scope, receive, send):
    airlock.enqueue(ran.append, scope["path"])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
async def main():
    async def receive():
        return {"type": "http.request", "body": b""}
    async def send(message):
        pass
    await AirlockMiddleware(app)({"type": "http", "path": "/x", "method": "GET", "headers": []}, receive, send)
asyncio.run(main())
assert ran == ["/x"], ran
""",
    "flask": """
from flask import Flask
import airlock
from airlock.integrations.flask import Airlock
ran = []
app = Flask("extras")
Airlock(app)
@app.get("/")
def index():
    airlock.enqueue(ran.append, "sent")
    return "ok"
assert app.test_client().get("/").status_code == 200
assert ran == ["sent"], ran
""",
    "sqlalchemy": SQLALCHEMY_SYNC,
    "otel": """
from opentelemetry import trace
import airlock
from airlock.integrations.otel import install, uninstall
install()
with airlock.scope():
    airlock.enqueue(print, "traced")
uninstall()
""",
    "lint": """
import subprocess, sys, tempfile, pathlib
with tempfile.TemporaryDirectory() as d:
    f = pathlib.Path(d, "views.py")
    f.write_text("send_email.delay(1)\\n")
    out = subprocess.run([sys.executable, "-m", "flake8", "--select=AIR", str(f)], capture_output=True, text=True)
    assert "AIR001" in out.stdout, (out.stdout, out.stderr)
""",
    "demo": DJANGO_SETUP.format(apps=["django.contrib.contenttypes", "airlock.integrations.django"], extra="")
    + "from airlock.integrations.executors.huey import huey_executor\n",
}

# The bare package: the core works, and every integration names its extra.
BARE = """
import importlib
import airlock
with airlock.scope():
    airlock.enqueue(print, "core works")
for module, extra in {hints!r}:
    try:
        importlib.import_module(module)
    except ImportError as error:
        assert f'pip install "airlock-py[{{extra}}]"' in str(error), (module, str(error))
    else:
        raise AssertionError(f"{{module}} imported without its framework")
"""
HINTS = [
    ("airlock.integrations.django", "django"),
    ("airlock.integrations.celery", "celery"),
    ("airlock.integrations.executors.celery", "celery"),
    ("airlock.integrations.executors.dramatiq", "dramatiq"),
    ("airlock.integrations.executors.huey", "huey"),
    ("airlock.integrations.executors.django_q", "django-q"),
    ("airlock.integrations.executors.django_tasks", "django-tasks"),
    ("airlock.integrations.executors.rq", "rq"),
    ("airlock.integrations.flask", "flask"),
    ("airlock.integrations.sqlalchemy", "sqlalchemy"),
    ("airlock.integrations.otel", "otel"),
]


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def build_wheel(into: Path) -> Path:
    done = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(into), str(ROOT)])
    if done.returncode:
        sys.exit(f"building the wheel failed:\n{done.stdout}{done.stderr}")
    (wheel,) = into.glob("airlock_py-*.whl")
    return wheel


def try_extra(extra: str | None, wheel: Path, workdir: Path) -> tuple[str, bool, float, str]:
    label = extra or "(none)"
    started = time.monotonic()
    venv = workdir / f"venv-{extra or 'bare'}"
    python = venv / "bin" / "python"
    target = f"{wheel}[{extra}]" if extra else str(wheel)
    code = CHECKS[extra] if extra else BARE.format(hints=HINTS)
    steps = [
        # No pip inside: this interpreter's pip installs into it (``pip --python``), which
        # saves bootstrapping a pip per virtualenv. The install itself is a real one.
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", target],
        # Run from an empty directory: the check must see the installed wheel, not src/.
        [str(python), "-c", code],
    ]
    log = ""
    for step in steps:
        done = run(step, cwd=workdir)
        log += done.stdout + done.stderr
        if done.returncode:
            return label, False, time.monotonic() - started, f"$ {' '.join(step[:4])} ...\n{log}"
    return label, True, time.monotonic() - started, log.strip()


def main(argv: list[str]) -> int:
    extras = list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    missing = sorted(set(extras) - set(CHECKS))
    if missing:
        sys.exit(f"extras without a check in .ci/extras.py: {missing}")
    wanted: list[str | None] = [None, *extras] if not argv else [None if a == "none" else a for a in argv]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="airlock-extras-") as tmp:
        workdir = Path(tmp)
        wheel = build_wheel(workdir / "dist")
        print(f"extras matrix: {wheel.name}, Python {sys.version.split()[0]}, {PARALLEL} at a time")
        failures = []
        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
            for label, ok, seconds, log in pool.map(lambda e: try_extra(e, wheel, workdir), wanted):
                note = " | ".join(line for line in log.splitlines() if line and "is ignored" not in line)
                print(f"  {'ok  ' if ok else 'FAIL'} [{label}] {seconds:5.1f}s {note if ok else ''}".rstrip())
                if not ok:
                    failures.append((label, log))
    for label, log in failures:
        print(f"\n--- [{label}] failed:\n{log}")
    print(
        f"extras: {len(wanted) - len(failures)} passed, {len(failures)} failed in {time.monotonic() - started:.0f}s"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
