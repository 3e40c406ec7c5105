"""`make demo`: the shop's checkout, four ways, with a real Huey worker running."""

from __future__ import annotations

import io
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.test import Client

from ...models import Order, SentMessage
from ...queue import huey
from ...tasks import barrier

WHERE_TO_LOOK = """
Where to look, in examples/shop/:
  store/models.py    Order.process() asks for the email and the shipment: airlock.enqueue(...)
  store/views.py     checkout(): one transaction per request (ATOMIC_REQUESTS), a savepoint for gift wrap
  shop/settings.py   INSTALLED_APPS and MIDDLEWARE (a scope per request, flushed after the commit),
                     AIRLOCK["EXECUTOR"]: the intents that escape go to Huey
  store/tasks.py     the tasks the Huey worker runs
"""


class Command(BaseCommand):
    help = "Walk through the airlock demo shop."

    def handle(self, *args: Any, **options: Any) -> None:
        # An in-process Huey consumer: one worker thread, polling SQLite often.
        consumer = huey.create_consumer(
            workers=1, worker_type="thread", initial_delay=0.02, backoff=1, max_delay=0.02
        )
        consumer.start()
        try:
            self.tour()
        finally:
            consumer.stop(graceful=True)

    def drain(self) -> list[str]:
        """Wait until the worker has run everything queued so far; return what it did since last time."""
        barrier()(blocking=True, timeout=10)
        done = list(SentMessage.objects.filter(id__gt=self.seen).order_by("id"))
        if done:
            self.seen = done[-1].id
        return [m.text for m in done]

    def show(self, ran: list[str]) -> None:
        for text in ran or ["nothing"]:
            self.stdout.write(f"   ran: {text}")

    def checkout(self, **form: str) -> Any:
        return Client().post("/checkout/", {"item": "teapot", "quantity": "1", "card": "4242", **form})

    def tour(self) -> None:
        self.seen = 0
        out = self.stdout.write
        out("airlock demo shop: Django (SQLite), Huey worker (SQLite storage, in-process)")
        out(WHERE_TO_LOOK)

        out("1. Successful checkout: POST /checkout/ as alice")
        response = self.checkout(email="alice@example.com")
        out(f"   {response.status_code} -> order committed; then airlock handed its intents to Huey")
        self.show(self.drain())

        out("2. Failing checkout: bob's card is declined, the view rolls back")
        response = self.checkout(email="bob@example.com", card="4000-0002")
        dropped = ", ".join(i.name for i in response.wsgi_request.airlock_scope.intents)
        out(f"   {response.status_code} -> no order in the database; discarded: {dropped}")
        self.show(self.drain())

        out("3. Gift wrap fails inside a savepoint; carol's order goes through without it")
        response = self.checkout(email="carol@example.com", item="kettle", gift_wrap="yes")
        ran = self.drain()
        made = ", ".join(i.name for i in response.wsgi_request.airlock_scope.intents)
        out(f"   {response.status_code} -> enqueued: {made}; the gift card died with its savepoint")
        self.show(ran)

        out("4. manage.py reprocess_orders --dry-run")
        buffer = io.StringIO()
        call_command("reprocess_orders", "--dry-run", stdout=buffer)
        for line in buffer.getvalue().splitlines():
            out(f"   {line}")
        self.show(self.drain())

        out("\nWhat the worker ran, in order:")
        for n, message in enumerate(SentMessage.objects.order_by("id"), 1):
            out(f"  {n}. {message.text}")
        orders = ", ".join(f"#{o.id} {o.email}" for o in Order.objects.order_by("id"))
        out(f"Orders in the database: {orders}")
