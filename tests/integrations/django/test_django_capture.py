"""In a (non-transactional) Django TestCase-style test, effects wait for the
test's own transaction; Django's on-commit capture runs them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import airlock
from integrations.django.testapp.effects import labels, record
from integrations.django.testapp.models import Order


@pytest.mark.django_db
def test_capture_on_commit_callbacks_runs_the_flush(
    ran: list[tuple[str, bool]], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with airlock.scope():
            Order.objects.create(label="a")
            airlock.enqueue(record, "a")
        assert ran == []  # the test transaction never commits by itself
    assert labels() == ["a"]
    assert len(callbacks) == 2  # the marker and the one dispatch
