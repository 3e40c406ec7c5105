"""Views that open an outbox scope inside the request's own scope (``AirlockMiddleware``)."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path
from outbox_support import record

import airlock
from airlock.outbox.django import DjangoOutboxScope


def place_order(request: HttpRequest) -> HttpResponse:
    with transaction.atomic(), airlock.scope(_cls=DjangoOutboxScope):
        airlock.enqueue(record, int(request.GET.get("n", "1")))
    status = int(request.GET.get("status", "200"))
    return HttpResponse("ok", status=status)


urlpatterns = [path("order/", place_order)]
