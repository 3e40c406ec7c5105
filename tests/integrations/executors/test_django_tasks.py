"""The django_tasks executor against the django-tasks database backend and its db_worker.

Django 5.2 has no ``django.tasks``, so this runs the ``django_tasks`` backport
with the ``django_tasks_db`` database backend (TASKS["database"] in
tests/django_settings.py), and the backend's own ``Worker`` (what the
``db_worker`` management command runs) in batch mode: it processes what is
due, then returns.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from unittest.mock import Mock

import pytest
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

import airlock
from airlock.integrations.executors.django_tasks import django_tasks_executor

from .django_tasks_tasks import record

pytestmark = pytest.mark.django_db(transaction=True)


def run_worker(queue: str = "default") -> None:
    """Run the database backend's worker over ``queue`` until nothing is due."""
    Worker(
        queue_names=[queue],
        interval=0,
        batch=True,
        backend_name="database",
        startup_delay=False,
        max_tasks=None,
        worker_id="airlock-exec-worker",
        excluded_queue_names=[],
    ).run()


def test_flushed_intent_is_run_by_the_worker() -> None:
    with airlock.scope(executor=django_tasks_executor):
        airlock.enqueue(record, 1, tag="first")
        airlock.enqueue(record, 2, tag="second")
        assert DBTaskResult.objects.count() == 0
    assert DBTaskResult.objects.filter(status="READY").count() == 2
    run_worker()
    rows = DBTaskResult.objects.order_by("enqueued_at")
    assert [(row.status, row.return_value) for row in rows] == [
        ("SUCCESSFUL", {"value": 1, "tag": "first"}),
        ("SUCCESSFUL", {"value": 2, "tag": "second"}),
    ]


def test_discarded_scope_enqueues_nothing() -> None:
    with pytest.raises(RuntimeError):
        with airlock.scope(executor=django_tasks_executor):
            airlock.enqueue(record, 1)
            raise RuntimeError
    assert DBTaskResult.objects.count() == 0
    with airlock.scope(executor=django_tasks_executor):  # control: a successful scope does enqueue
        airlock.enqueue(record, 1)
    assert DBTaskResult.objects.count() == 1


def test_queue_name_routes_to_that_queue() -> None:
    with airlock.scope(executor=django_tasks_executor):
        airlock.enqueue(
            record, "routed", _dispatch_options={"queue_name": "airlock-exec-other", "priority": 7}
        )
    run_worker("default")
    (row,) = DBTaskResult.objects.all()
    assert (row.queue_name, row.priority, row.status) == ("airlock-exec-other", 7, "READY")
    run_worker("airlock-exec-other")
    row.refresh_from_db()
    assert (row.status, row.return_value) == ("SUCCESSFUL", {"value": "routed", "tag": "run"})


def test_run_after_holds_the_task_back() -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    with airlock.scope(executor=django_tasks_executor):
        airlock.enqueue(record, "later", _dispatch_options={"run_after": later})
    run_worker()
    (row,) = DBTaskResult.objects.all()
    assert (row.status, row.run_after) == ("READY", later)


def test_unserializable_argument_fails_at_enqueue() -> None:
    from django.contrib.auth.models import User

    with socket.socket() as sock, airlock.scope(executor=django_tasks_executor) as scope:
        with pytest.raises(TypeError, match=r"record: its positional argument 0 \(<User: ada>\).*JSON"):
            airlock.enqueue(record, User(username="ada"))
        with pytest.raises(TypeError, match=r"record: its keyword argument 'tag' \(<socket"):
            airlock.enqueue(record, 1, tag=sock)
        assert scope.intents == []
    assert DBTaskResult.objects.count() == 0


def test_bad_options_fail_at_enqueue() -> None:
    with airlock.scope(executor=django_tasks_executor) as scope:
        with pytest.raises(
            TypeError, match=r"record with dispatch options \{'queue': 'x'\}: .*unexpected keyword.*'queue'"
        ):
            airlock.enqueue(record, 1, _dispatch_options={"queue": "x"})
        with pytest.raises(TypeError, match=r"record with dispatch options .*not-a-queue"):
            airlock.enqueue(record, 1, _dispatch_options={"queue_name": "not-a-queue"})
        assert scope.intents == []


def test_plain_callable_is_called_in_process() -> None:
    seen: list[int] = []
    with airlock.scope(executor=django_tasks_executor):
        airlock.enqueue(seen.append, 3)
        assert seen == []
    assert seen == [3]


def test_task_objects_are_tasks_for_the_core() -> None:
    # django-tasks Task objects are not callable; enqueue still accepts them,
    # and the default (sync) executor runs them in-process with .call().
    assert not callable(record)
    with airlock.scope() as scope:
        intent = airlock.enqueue(record, 5)
        assert intent.name == "record"
    assert scope.is_flushed
    assert DBTaskResult.objects.count() == 0  # ran in-process, never enqueued
    with pytest.raises(airlock.NoScopeError, match="record"):
        airlock.enqueue(record, 5)
    with airlock.scope(), pytest.raises(TypeError, match="needs a callable task"):
        airlock.enqueue(object())  # type: ignore[arg-type]


def test_plain_callable_ignores_dispatch_options() -> None:
    seen: list[int] = []
    with airlock.scope(executor=django_tasks_executor):
        airlock.enqueue(seen.append, 1, _dispatch_options={"priority": 5})
        assert seen == []
    assert seen == [1]


def test_a_test_double_receives_the_call_the_task_would() -> None:
    task = Mock(spec=type(record))
    with airlock.scope(executor=django_tasks_executor):
        airlock.enqueue(task, 1, _name="notify", to="ada")
        airlock.enqueue(task, 2, _name="notify", _dispatch_options={"priority": 7, "queue_name": "mail"})
        task.enqueue.assert_not_called()
    task.enqueue.assert_called_once_with(1, to="ada")
    # using() ran twice: once to validate the options at enqueue, once to dispatch.
    task.using.assert_called_with(priority=7, queue_name="mail")
    task.using.return_value.enqueue.assert_called_once_with(2)


class TaskProxy:
    """Forwards every attribute to the task it wraps (what tracing wrappers do)."""

    def __init__(self, task: object) -> None:
        self._task = task

    def __getattr__(self, name: str) -> object:
        return getattr(self._task, name)


def test_a_proxy_is_enqueued_like_the_task() -> None:
    with airlock.scope(executor=django_tasks_executor):
        airlock.enqueue(TaskProxy(record), "proxied", _name="record")  # type: ignore[arg-type]
        airlock.enqueue(
            TaskProxy(record),
            "routed",
            _name="record",  # type: ignore[arg-type]
            _dispatch_options={"queue_name": "airlock-exec-other"},
        )
    run_worker()
    run_worker("airlock-exec-other")
    rows = DBTaskResult.objects.order_by("enqueued_at")
    assert [(row.queue_name, row.status, row.return_value["value"]) for row in rows] == [
        ("default", "SUCCESSFUL", "proxied"),
        ("airlock-exec-other", "SUCCESSFUL", "routed"),
    ]


def test_django_6_runs_on_djangos_own_task_framework() -> None:
    """On Django >= 6.0 (``make test-django6``) the tasks are ``django.tasks``' own, not the backport's."""
    import django

    expected = "django.tasks." if django.VERSION >= (6, 0) else "django_tasks."
    assert type(record).__module__.startswith(expected), type(record)
