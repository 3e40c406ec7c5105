"""Django's on-commit capture (``TestCase.captureOnCommitCallbacks``, pytest-django's
``django_capture_on_commit_callbacks``) sees exactly one callback per flushing
scope: airlock's per-level marker carries the flush, it registers no other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from django.test import Client, TestCase

import airlock
from airlock.integrations.django import DjangoScope
from integrations.django.testapp.effects import RAN, labels, record
from integrations.django.testapp.models import Order


@pytest.mark.django_db
def test_capture_on_commit_callbacks_runs_the_flush(
    ran: list[tuple[str, bool]], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with airlock.scope():
            Order.objects.create(label="a")
            airlock.enqueue(record, "a")
            airlock.enqueue(record, "b")
        assert ran == []  # the test transaction never commits by itself
    assert labels() == ["a", "b"]
    assert len(callbacks) == 1


class DiscardingScope(DjangoScope):
    def should_flush(self, error: BaseException | None) -> bool:
        return False


@pytest.mark.django_db
def test_one_callback_per_flushing_scope(
    ran: list[tuple[str, bool]], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for label in ("first", "second"):
            with airlock.scope():
                airlock.enqueue(record, label)
        with DiscardingScope():  # discarded: no callback of its own
            airlock.enqueue(record, "dropped")
    assert len(callbacks) == 2
    for callback in callbacks:
        callback()
    assert labels() == ["first", "second"]


@pytest.mark.django_db
def test_effects_made_in_a_released_savepoint_still_one_callback(
    ran: list[tuple[str, bool]], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with airlock.scope():
            with transaction.atomic():
                Order.objects.create(label="inner")
                airlock.enqueue(record, "inner")
    assert labels() == ["inner"] and len(callbacks) == 1


@pytest.mark.django_db
def test_a_request_through_the_test_client_is_one_callback(
    ran: list[tuple[str, bool]], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert Client().get("/effect/200/").status_code == 200
    assert labels() == ["status-200"] and len(callbacks) == 1


@pytest.mark.django_db
def test_nothing_is_registered_for_a_discarded_request(
    ran: list[tuple[str, bool]], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert Client().get("/effect/400/").status_code == 400
    # The marker of the level the effect was made in is registered (it had to
    # be, to see a rollback) and does nothing: the one no-op a discarded scope leaves.
    assert ran == [] and len(callbacks) == 1


class CaptureInTestCase(TestCase):
    """The same in Django's own TestCase API, as users of Django's docs write it."""

    databases = {"default"}

    def test_capture_on_commit_callbacks(self) -> None:
        RAN.clear()
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            with airlock.scope():
                Order.objects.create(label="tc")
                airlock.enqueue(record, "tc")
        self.assertEqual(len(callbacks), 1)
        self.assertEqual(labels(), ["tc"])
        RAN.clear()
