from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from .models import GiftWrapOutOfStock, Order


class PaymentDeclined(Exception):
    pass


def charge(card: str) -> None:
    if card.endswith("0002"):
        raise PaymentDeclined(card)


@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    # ATOMIC_REQUESTS: this view is one transaction; AirlockMiddleware gives
    # the request one scope, which flushes after the commit on a < 400 status.
    order = Order.objects.create(
        email=request.POST["email"], item=request.POST["item"], quantity=int(request.POST.get("quantity", 1))
    )
    order.process()
    if request.POST.get("gift_wrap"):
        try:
            with transaction.atomic():  # a savepoint
                order.add_gift_wrap()
        except GiftWrapOutOfStock:
            pass  # ship without gift wrap; the savepoint and its intents are gone
    try:
        charge(request.POST["card"])
    except PaymentDeclined:
        transaction.set_rollback(True)
        return HttpResponse("payment declined", status=402)
    return redirect(f"/orders/{order.id}/")


def order_detail(request: HttpRequest, order_id: int) -> HttpResponse:
    order = get_object_or_404(Order, id=order_id)
    return HttpResponse(f"order #{order.id}: {order.status}")
