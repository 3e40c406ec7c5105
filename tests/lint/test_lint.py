"""AIR001 on a realistic sample tree, through the API, the CLI and flake8 itself.

Every line of ``samples/`` that must be reported carries ``# expect: AIR001``;
every other line (sockets, mailers, signals, objects with their own ``delay``,
strings, comments, silenced lines) must not be.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airlock.lint import Plugin, check_file, check_source
from airlock.lint.__main__ import main

SAMPLES = Path(__file__).parent / "samples"
REPO = Path(__file__).parents[2]


def expected_lines() -> set[tuple[str, int]]:
    found = set()
    for path in sorted(SAMPLES.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "# expect: AIR001" in line:
                found.add((str(path.relative_to(SAMPLES)), number))
    return found


def test_the_samples_are_realistic() -> None:
    # Guard against the test passing vacuously.
    assert len(expected_lines()) >= 20
    assert {p for p, _ in expected_lines()} == {
        "shop/actors.py",
        "shop/billing.py",
        "shop/jobs.py",
        "shop/legacy.py",
        "shop/remote.py",
        "shop/tasks.py",
        "shop/views.py",
    }


def test_api_reports_exactly_the_expected_lines() -> None:
    found = {
        (str(path.relative_to(SAMPLES)), v.line)
        for path in sorted(SAMPLES.rglob("*.py"))
        for v in check_file(path)
    }
    assert found == expected_lines()


def test_cli_output_format_and_exit_status(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(SAMPLES)
    assert main(["shop"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert {(line.split(":")[0], int(line.split(":")[1])) for line in out} == expected_lines()
    assert (
        "shop/views.py:11:18: AIR001 direct send_receipt.delay() bypasses airlock; use "
        "airlock.enqueue(send_receipt, ...)" in out
    )
    assert (
        "shop/views.py:12:19: AIR001 direct rebuild_cache.apply_async() bypasses airlock; use "
        "airlock.enqueue(rebuild_cache, ..., _dispatch_options={...})" in out
    )
    assert (
        "shop/jobs.py:25:5: AIR001 calling the Huey task resize_image() enqueues it directly, "
        "bypassing airlock; use airlock.enqueue(resize_image, ...)" in out
    )
    assert (
        "shop/remote.py:9:9: AIR001 direct app.send_task() bypasses airlock; use "
        "airlock.enqueue(app.signature('billing.tasks.make_invoice'), ...)" in out
    )
    # Every line follows path:line:col: AIR001 message.
    assert all(re.fullmatch(r"shop/\w+\.py:\d+:\d+: AIR001 .+", line) for line in out)


def test_cli_clean_file_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(SAMPLES / "shop" / "animation.py"), str(SAMPLES / "shop" / "__init__.py")]) == 0
    assert capsys.readouterr().out == ""


def test_cli_errors_exit_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n    pass\n")
    (tmp_path / "bad.py").write_text("x.delay()\n")
    assert main([str(tmp_path), str(tmp_path / "missing")]) == 2
    captured = capsys.readouterr()
    assert f"{broken}:1: cannot check: SyntaxError" in captured.err
    assert f"{tmp_path / 'missing'}: no such file or directory" in captured.err
    assert f"{tmp_path / 'bad.py'}:1:3: AIR001" in captured.out


def test_cli_skips_hidden_and_excluded_directories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for sub in (".venv", "__pycache__", "vendored", "app"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "m.py").write_text("send.delay()\n")
    assert main([str(tmp_path), "--exclude", "vendored"]) == 1
    out = capsys.readouterr().out
    assert (
        out == f"{tmp_path / 'app' / 'm.py'}:1:6: AIR001 direct send.delay() bypasses airlock; "
        "use airlock.enqueue(send, ...)\n"
    )


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airlock.lint", "shop/views.py"], cwd=SAMPLES, capture_output=True, text=True
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("shop/views.py:11:18: AIR001 ")
    usage = subprocess.run([sys.executable, "-m", "airlock.lint"], capture_output=True, text=True)
    assert usage.returncode == 2 and "PATH" in usage.stderr


def test_flake8_runs_the_plugin_with_its_own_noqa_handling() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", "--select=AIR", "shop"],
        cwd=SAMPLES,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stderr
    found = {(line.split(":")[0], int(line.split(":")[1])) for line in result.stdout.splitlines()}
    assert found == expected_lines()
    assert "shop/views.py:11:18: AIR001 direct send_receipt.delay() bypasses airlock" in result.stdout


def test_flake8_plugin_class_directly() -> None:
    import ast

    tree = ast.parse("t.delay(1)\nt.send(1)\n")
    assert [(line, col, text[:6]) for line, col, text, _ in Plugin(tree).run()] == [(1, 2, "AIR001")]


def check(code: str) -> list[int]:
    return [v.line for v in check_source(textwrap.dedent(code))]


def test_noqa_needs_a_real_comment() -> None:
    assert check('text = "# noqa: AIR001"; send.delay(1)\n') == [1]
    assert check("send.delay(1)  # noqa:AIR\n") == []
    assert check("send.delay(1)  # noqa: air001\n") == []
    assert check("send.delay(1)  # noqa: AIR0011\n") == [1]


def test_receivers_that_are_provably_not_tasks() -> None:
    assert (
        check(
            """
        import queue

        class Timer:
            delay = 3

            def go(self):
                self.delay(1)

        def f(q: queue.Queue[int], timer: "Timer | None"):
            q.delay(1)
            timer.apply_async()
            [1].delay()
            x = 1
            x.delay()
        """
        )
        == []
    )


def test_receivers_that_could_be_tasks_are_reported() -> None:
    assert check(
        """
        def f(task, sig: "Signature", t: Task, maybe):
            task.delay()
            sig.delay()
            t.apply_async()
            get_task().delay()
            maybe = Backoff() if maybe else send_email
            maybe.delay()

        class NotATaskClass:
            def run(self):
                self.delay()
        """
    ) == [3, 4, 5, 6, 8, 12]


def test_send_and_schedule_only_on_known_tasks() -> None:
    assert check(
        """
        import dramatiq
        from app import tasks
        import app.actors as acts

        @dramatiq.actor
        def charge(n): ...

        process = dramatiq.actor(lambda: None)
        wrapped = dramatiq.actor(charge)

        def f(mailer, scheduler):
            mailer.send()
            scheduler.schedule()
            charge.send(1)
            tasks.anything.send(1)
            acts.refund.send(1)
            wrapped.send()
            process.send()
        """
    ) == [15, 16, 17, 18, 19]


def test_celery_task_called_like_a_function_is_not_an_enqueue() -> None:
    assert (
        check(
            """
        from celery import shared_task

        @shared_task
        def add(a, b):
            return a + b

        add(1, 2)
        """
        )
        == []
    )


def test_pre_commit_hook_definition_runs() -> None:
    import shlex

    import yaml

    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    (hook,) = hooks
    assert hook["id"] == "airlock-lint"
    assert hook["language"] == "python" and hook["types"] == ["python"]
    # pre-commit appends the staged file names to the entry.
    command = shlex.split(hook["entry"])
    assert command[0] == "python"
    result = subprocess.run(
        [sys.executable, *command[1:], "shop/views.py", "shop/animation.py"],
        cwd=SAMPLES,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert {line.split(":")[0] for line in result.stdout.splitlines()} == {"shop/views.py"}


def test_cli_exclude_takes_names_paths_and_comma_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for sub in ("shop/migrations", "shop/legacy", "shop/views", "billing/migrations", "billing/api"):
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "m.py").write_text("send.delay()\n")
    monkeypatch.chdir(tmp_path)
    # A bare name skips every directory of that name; a path with "/" is taken from here.
    assert main([".", "--exclude", "migrations,shop/legacy", "--exclude", "billing/api/*"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "shop/views/m.py:1:6: AIR001 direct send.delay() bypasses airlock; use airlock.enqueue(send, ...)"
    ]
    # Control: without --exclude every file is reported.
    assert main(["."]) == 1
    assert len(capsys.readouterr().out.splitlines()) == 5
    # A file named on the command line is always checked.
    assert main(["shop/migrations/m.py", "--exclude", "migrations"]) == 1
    capsys.readouterr()


def test_flake8_select_air_still_reports_a_file_it_cannot_parse(tmp_path: Path) -> None:
    """flake8 runs no plugin on a file it cannot parse: under --select=AIR it must not look clean."""
    (tmp_path / "broken.py").write_text("def f(:\n    send.delay()\n")
    (tmp_path / "fine.py").write_text("x = 1  \n")  # trailing whitespace: W291 stays unselected
    flake8 = [sys.executable, "-m", "flake8", "--isolated"]
    result = subprocess.run([*flake8, "--select=AIR", "."], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    (line,) = result.stdout.splitlines()  # the column depends on the Python version
    assert re.fullmatch(r"\./broken\.py:1:\d+: E999 SyntaxError: .+", line), line
    # An explicit ignore still wins; another selection is left as the user chose it.
    ignored = subprocess.run(
        [*flake8, "--select=AIR", "--extend-ignore=E999", "."], cwd=tmp_path, capture_output=True, text=True
    )
    assert (ignored.returncode, ignored.stdout) == (0, "")
    other = subprocess.run([*flake8, "--select=W", "."], cwd=tmp_path, capture_output=True, text=True)
    assert other.stdout.splitlines() == ["./fine.py:1:6: W291 trailing whitespace"]


def test_send_task_is_reported_on_any_app() -> None:
    assert check(
        """
        from celery import Celery
        app = Celery("shop")
        app.send_task("billing.make_invoice", args=(1,))
        def later(celery_app, name):
            celery_app.send_task(name)
        """
    ) == [4, 6]


def test_a_receiver_without_a_name_is_shown_as_an_expression() -> None:
    (finding,) = check_source("(primary or fallback).apply_async((1,))\n")
    assert finding.text == (
        "AIR001 direct (...).apply_async() bypasses airlock; "
        "use airlock.enqueue(task, ..., _dispatch_options={...})"
    )


def test_a_pools_apply_async_is_not_a_task() -> None:
    assert check(
        """
        def run(pool, self_like):
            pool.apply_async(work, (1,))
            self_like._pool.apply_async(work)
            thread_pool.apply_async(work)
            pool.delay(1)                    # a pool has no delay(): still reported
            pooled_task.apply_async((1,))    # "pool" must end the name
        """
    ) == [6, 7]
