"""Views that still dispatch directly."""

import airlock

from . import tasks
from .tasks import rebuild_cache, send_receipt


def checkout(request, order):
    order.status = "paid"
    send_receipt.delay(order.id)  # expect: AIR001
    rebuild_cache.apply_async(countdown=5, queue="low")  # expect: AIR001
    tasks.send_receipt.delay(order.id)  # expect: AIR001
    airlock.enqueue(send_receipt, order.id)
    airlock.enqueue(rebuild_cache, _dispatch_options={"countdown": 5})


def refund(request, order):
    result = (
        send_receipt
        .delay(order.id)  # expect: AIR001
    )
    return result


def admin_resend(order, task=None):
    (task or send_receipt).delay(order.id)  # expect: AIR001


class ResendView:
    task = send_receipt

    def post(self, order):
        self.task.delay(order.id)  # expect: AIR001
