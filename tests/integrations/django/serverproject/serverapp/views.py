from __future__ import annotations

import time

from django.db import transaction
from django.http import HttpRequest, HttpResponse

import airlock

from ..celery_app import celery_check_row
from .models import Order
from .tasks import check_row, check_row_task


def _effect(request: HttpRequest, label: str, alias: str = "default") -> None:
    """The effect, sent the way ``?via=`` says: airlock (default), Celery's delay_on_commit, or tasks-db."""
    via = request.GET.get("via")
    if via == "delay-on-commit":
        celery_check_row.delay_on_commit(label, alias)
    elif via == "tasks-db":
        airlock.enqueue(check_row_task, label, alias)
    else:
        airlock.enqueue(check_row, label, alias)


class HandledError(Exception):
    """Raised by a view; a middleware turns it into a 200."""


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def write(request: HttpRequest, label: str) -> HttpResponse:
    """Write the row (on the block's database), ask for the check."""
    alias = request.headers.get("X-Atomic-Using", "default")
    Order.objects.using(alias).create(label=label)
    _effect(request, label, alias)
    return HttpResponse("written")


def raising(request: HttpRequest, label: str) -> HttpResponse:
    Order.objects.create(label=label)
    _effect(request, label)
    raise HandledError(label)


def disconnect(request: HttpRequest, label: str) -> HttpResponse:
    """One intent outside any transaction, one inside a block that commits after a pause."""
    _effect(request, f"{label}-untied")
    with transaction.atomic():
        Order.objects.create(label=label)
        _effect(request, label)
        time.sleep(float(request.GET.get("pause", "1.5")))
    return HttpResponse("done")


def savepoint(request: HttpRequest, label: str) -> HttpResponse:
    """The effect of a savepoint that rolls back, then one of a savepoint that is released."""
    try:
        with transaction.atomic():
            Order.objects.create(label=f"{label}-rolled-back")
            _effect(request, f"{label}-rolled-back")
            raise HandledError("undo the savepoint")
    except HandledError:
        pass
    with transaction.atomic():
        Order.objects.create(label=label)
        _effect(request, label)
    return HttpResponse("saved")
