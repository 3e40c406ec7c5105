"""airlock.integrations._extras: a missing framework names the extra to install.

Each case runs in a fresh interpreter where the framework is made missing the
way Python itself reports it (``sys.modules[name] = None`` makes ``import name``
raise ``ModuleNotFoundError``), so the installed frameworks stay untouched. The
real thing, a clean virtualenv per extra, is ``.ci/extras.py`` (run by CI).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from airlock.integrations._extras import requires


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


# (integration module, the modules that are missing, the extra the message must name)
CASES = [
    ("airlock.integrations.django", ["django"], "django"),
    # Django installed without asgiref is not a thing, but the message must still say "django".
    ("airlock.integrations.django", ["asgiref", "asgiref.sync"], "django"),
    ("airlock.integrations.celery", ["celery"], "celery"),
    ("airlock.integrations.executors.celery", ["celery"], "celery"),
    ("airlock.integrations.executors.celery", ["kombu"], "celery"),
    ("airlock.integrations.executors.dramatiq", ["dramatiq"], "dramatiq"),
    ("airlock.integrations.executors.huey", ["huey"], "huey"),
    ("airlock.integrations.executors.django_q", ["django_q"], "django-q"),
    ("airlock.integrations.executors.django_tasks", ["django.tasks", "django_tasks"], "django-tasks"),
    ("airlock.integrations.executors.rq", ["rq"], "rq"),
    ("airlock.integrations.executors.rq", ["redis"], "rq"),
    ("airlock.integrations.flask", ["flask"], "flask"),
    ("airlock.integrations.sqlalchemy", ["sqlalchemy"], "sqlalchemy"),
    ("airlock.integrations.otel", ["opentelemetry"], "otel"),
]


@pytest.mark.parametrize(
    ("module", "missing", "extra"), CASES, ids=[f"{c[0]}-without-{c[1][0]}" for c in CASES]
)
def test_missing_framework_names_the_extra(module: str, missing: list[str], extra: str) -> None:
    done = run_python(
        f"""
        import importlib, sys
        for name in {missing!r}:
            sys.modules[name] = None
        try:
            importlib.import_module({module!r})
        except ModuleNotFoundError as error:
            print(error)
        else:
            print("imported")
        """
    )
    assert done.returncode == 0, done.stderr
    message = done.stdout.strip()
    assert f'pip install "airlock-py[{extra}]"' in message
    assert any(name in message.split(":")[0] for name in missing)  # and which module is missing


def test_the_error_keeps_the_original_as_its_cause() -> None:
    with pytest.raises(ModuleNotFoundError, match=r'pip install "airlock-py\[rq\]"') as caught:
        with requires("rq"):
            import airlock_no_such_framework  # noqa: F401
    assert caught.value.name == "airlock_no_such_framework"
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_a_framework_that_fails_while_importing_keeps_its_own_error() -> None:
    # Installed but broken (a bad version, an import-time bug) is not "install the extra".
    with pytest.raises(ImportError, match="cannot import name") as caught:
        with requires("rq"):
            from airlock import no_such_name  # type: ignore[attr-defined]  # noqa: F401
    assert "pip install" not in str(caught.value)


def test_sqlalchemy_sync_scope_works_without_greenlet() -> None:
    """SQLAlchemy 2.1 no longer installs greenlet: ``[sqlalchemy]`` alone must serve sync sessions."""
    done = run_python(
        """
        import asyncio, sys
        sys.modules["greenlet"] = None  # not installed
        from sqlalchemy import create_engine, text
        from sqlalchemy.orm import Session
        import airlock
        from airlock.integrations.sqlalchemy import AsyncSQLAlchemyScope, SQLAlchemyScope

        ran = []
        engine = create_engine("sqlite://")
        with Session(engine) as session:
            with airlock.scope(_cls=SQLAlchemyScope, session=session):
                session.execute(text("select 1"))
                airlock.enqueue(ran.append, "with")
            assert ran == [], "dispatched before the commit"
            session.commit()

        async def main():
            with Session(engine) as session:
                async with airlock.scope(_cls=SQLAlchemyScope, session=session):
                    session.execute(text("select 1"))
                    airlock.enqueue(ran.append, "async with")
                assert ran == ["with"], "dispatched before the commit"
                session.commit()

        asyncio.run(main())
        print(ran)
        try:
            AsyncSQLAlchemyScope(session=Session(engine))
        except TypeError as error:
            print("TypeError:", error)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no "coroutine was never awaited"
    lines = done.stdout.splitlines()
    assert lines[0] == "['with', 'async with']"
    assert lines[1].startswith(
        "TypeError: AsyncSQLAlchemyScope(session=...) needs a sqlalchemy.ext.asyncio.AsyncSession"
    )
