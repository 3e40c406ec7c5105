from __future__ import annotations

from django.db import models

import airlock

from . import tasks


class GiftWrapOutOfStock(Exception):
    pass


class Order(models.Model):
    email = models.EmailField()
    item = models.CharField(max_length=100)
    quantity = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, default="new")
    gift_wrapped = models.BooleanField(default=False)

    def process(self) -> None:
        """Mark the order processed; ask for the emails and the shipment.

        Nothing is sent here: the intents wait in the active airlock scope,
        which lets them out only once the transaction has committed.
        """
        self.status = "processed"
        self.save()
        airlock.enqueue(tasks.send_confirmation_email, order_id=self.id)
        airlock.enqueue(tasks.notify_warehouse, order_id=self.id)

    def add_gift_wrap(self) -> None:
        self.gift_wrapped = True
        self.save()
        airlock.enqueue(tasks.print_gift_card, order_id=self.id)
        raise GiftWrapOutOfStock("no gift wrap left")


class SentMessage(models.Model):
    """What the worker did, in order: the demo's window on the outside world."""

    text = models.CharField(max_length=200)
