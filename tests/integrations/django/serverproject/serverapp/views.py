from __future__ import annotations

import time

from django.db import transaction
from django.http import HttpRequest, HttpResponse

import airlock

from .models import Order
from .tasks import check_row, check_row_task


class HandledError(Exception):
    """Raised by a view; a middleware turns it into a 200."""


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def write(request: HttpRequest, label: str) -> HttpResponse:
    """Write the row (on the block's database), enqueue the check."""
    alias = request.headers.get("X-Atomic-Using", "default")
    Order.objects.using(alias).create(label=label)
    airlock.enqueue(check_row_task if request.GET.get("via") == "tasks-db" else check_row, label, alias)
    return HttpResponse("written")


def raising(request: HttpRequest, label: str) -> HttpResponse:
    Order.objects.create(label=label)
    airlock.enqueue(check_row, label)
    raise HandledError(label)


def disconnect(request: HttpRequest, label: str) -> HttpResponse:
    """One intent outside any transaction, one inside a block that commits after a pause."""
    airlock.enqueue(check_row, f"{label}-untied")
    with transaction.atomic():
        Order.objects.create(label=label)
        airlock.enqueue(check_row, label)
        time.sleep(float(request.GET.get("pause", "1.5")))
    return HttpResponse("done")
