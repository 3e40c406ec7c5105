from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import transaction
from django.http import HttpRequest, HttpResponse

import airlock

from .effects import arecord, note_thread, record
from .models import Order


def effect(request: HttpRequest, status: int) -> HttpResponse:
    Order.objects.create(label=f"status-{status}")
    airlock.enqueue(record, f"status-{status}")
    response = HttpResponse(request.airlock_scope.origin or "", status=status)
    if 300 <= status < 400:
        response["Location"] = "/elsewhere/"
    return response


def explode(request: HttpRequest) -> HttpResponse:
    Order.objects.create(label="explode")
    airlock.enqueue(record, "explode")
    raise RuntimeError("view exploded")


def savepoint(request: HttpRequest) -> HttpResponse:
    airlock.enqueue(record, "before")
    try:
        with transaction.atomic():
            Order.objects.create(label="rolled-back")
            airlock.enqueue(record, "in-rolled-back-savepoint")
            raise ValueError("undo this block")
    except ValueError:
        pass
    with transaction.atomic():
        Order.objects.create(label="kept")
        airlock.enqueue(record, "in-kept-savepoint")
    return HttpResponse("ok")


def _helper_enqueues(label: str) -> int:
    Order.objects.create(label=label)
    airlock.enqueue(record, label)
    return Order.objects.filter(label=label).count()


async def async_effect(request: HttpRequest, status: int) -> HttpResponse:
    note_thread("view")
    airlock.enqueue(arecord, f"async-{status}")
    await sync_to_async(_helper_enqueues)(f"helper-{status}")
    body = " ".join(str(i) for i in request.airlock_scope.intents)
    return HttpResponse(body, status=status)


async def async_explode(request: HttpRequest) -> HttpResponse:
    airlock.enqueue(arecord, "async-explode")
    raise RuntimeError("async view exploded")
