"""Dramatiq actors."""

import dramatiq
from dramatiq import actor


@dramatiq.actor(queue_name="payments")
def charge(order_id):
    pass


@actor
def refund_payment(order_id):
    pass


def settle(order_id):
    charge.send(order_id)  # expect: AIR001
    refund_payment.send_with_options(args=(order_id,), delay=1000)  # expect: AIR001
