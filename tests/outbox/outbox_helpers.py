"""Shared by the outbox tests: where the support modules live, and the subprocess environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for relay/app subprocesses: our support modules importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env
