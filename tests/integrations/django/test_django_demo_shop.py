"""The demo shop (`make demo`) end to end: a real Huey worker, real SQLite files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"


def manage(tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shop.settings", "SHOP_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=SHOP, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_tour_runs_only_committed_effects_in_order(tmp_path: Path) -> None:
    manage(tmp_path, "migrate", "-v", "0")
    out = manage(tmp_path, "tour")
    summary = out.split("What the worker ran, in order:\n")[1].splitlines()
    assert summary == [
        "  1. send_confirmation_email: mail to alice@example.com: order #1 (1 x teapot)",
        "  2. notify_warehouse: ship order #1: 1 x teapot",
        "  3. send_confirmation_email: mail to carol@example.com: order #2 (1 x kettle)",
        "  4. notify_warehouse: ship order #2: 1 x kettle",
        "Orders in the database: #1 alice@example.com, #2 carol@example.com",
    ]
    assert "discarded: send_confirmation_email, notify_warehouse" in out
    assert "would run: notify_warehouse(order_id=2)" in out
    assert "print_gift_card: order" not in out  # its savepoint rolled back
    assert (tmp_path / "huey.sqlite3").exists()  # the tasks went through Huey's storage
    # The tour says where to look, and every file it names exists.
    assert "Where to look, in examples/shop/:" in out
    named = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and line.split()[0].endswith(".py")]
    assert named == ["store/models.py", "store/views.py", "shop/settings.py", "store/tasks.py"]
    assert all((SHOP / name).is_file() for name in named)
