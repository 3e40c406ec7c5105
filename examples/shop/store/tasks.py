"""The side effects, as Huey tasks run by the worker (in another thread, with its
own database connection, so it only ever sees committed data)."""

from __future__ import annotations

from django.db import close_old_connections

from .queue import huey


def _order(order_id: int):  # type: ignore[no-untyped-def]
    from .models import Order

    return Order.objects.filter(id=order_id).first()


def _log(text: str) -> None:
    from .models import SentMessage

    SentMessage.objects.create(text=text)
    close_old_connections()


@huey.task()
def send_confirmation_email(order_id: int) -> None:
    order = _order(order_id)
    if order is None:  # would mean an effect escaped a rolled-back transaction
        _log(f"send_confirmation_email: order #{order_id} DOES NOT EXIST")
        return
    summary = f"order #{order.id} ({order.quantity} x {order.item})"
    _log(f"send_confirmation_email: mail to {order.email}: {summary}")


@huey.task()
def notify_warehouse(order_id: int) -> None:
    order = _order(order_id)
    if order is None:
        _log(f"notify_warehouse: order #{order_id} DOES NOT EXIST")
        return
    _log(f"notify_warehouse: ship order #{order.id}: {order.quantity} x {order.item}")


@huey.task()
def print_gift_card(order_id: int) -> None:
    _log(f"print_gift_card: order #{order_id}")


@huey.task()
def barrier() -> bool:
    """Enqueued straight to Huey by the tour: once it ran, everything before it has."""
    return True
