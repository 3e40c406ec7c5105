"""Shared by the outbox tests: where the support modules live, and the subprocess environment."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airlock.outbox import SQLAlchemyStorage

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for relay/app subprocesses: our support modules importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


@contextmanager
def fresh_storage(url: str) -> Iterator[SQLAlchemyStorage]:
    """A fresh outbox table (``airlock_outbox_<random>``) in the database at ``url``, dropped after."""
    from airlock.outbox import SQLAlchemyStorage

    storage = SQLAlchemyStorage.from_url(url, f"airlock_outbox_{uuid.uuid4().hex[:10]}")
    storage.create_table()
    try:
        yield storage
    finally:
        storage.close()
        storage.drop_table()
        storage.engine.dispose()
