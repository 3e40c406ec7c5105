"""A Flask shop whose side effects leave only with a successful response.

Run it:  python examples/flask_app.py   (serves on http://127.0.0.1:5000)

    curl -X POST localhost:5000/orders --json '{"item": "tea", "quantity": 2}'    # 201: receipt sent
    curl -X POST localhost:5000/orders --json '{"item": "tea", "quantity": 99}'   # 409: nothing sent
    curl -X POST localhost:5000/orders/1/ship      # an async view
    curl localhost:5000/sent
"""

from __future__ import annotations

import asyncio

from flask import Flask, abort, g, request

import airlock
from airlock.integrations.flask import Airlock

STOCK = 10
ORDERS: dict[int, tuple[str, int]] = {}
SENT: list[str] = []  # stands in for the mail server and the carrier's API

airlock_extension = Airlock()  # app-factory style: bound in create_app()


def send_receipt(order_id: int) -> None:
    SENT.append(f"receipt for order {order_id}")


def book_courier(order_id: int) -> None:
    SENT.append(f"courier booked for order {order_id}")


def place_order(item: str, quantity: int) -> int:
    """Domain code: records the order and says which effects it implies, not when they run."""
    order_id = len(ORDERS) + 1
    ORDERS[order_id] = (item, quantity)
    airlock.enqueue(send_receipt, order_id)
    return order_id


def create_app() -> Flask:
    app = Flask(__name__)
    airlock_extension.init_app(app)

    @app.post("/orders")
    def create_order() -> tuple[dict[str, object], int]:
        body = request.get_json()
        order_id = place_order(body["item"], int(body["quantity"]))
        if int(body["quantity"]) > STOCK:
            # A 4xx response: the receipt is discarded with the request's scope.
            return {"error": "not enough stock", "order": order_id}, 409
        return {"order": order_id, "pending": [str(i) for i in g.airlock_scope.intents]}, 201

    @app.post("/orders/<int:order_id>/ship")
    async def ship(order_id: int) -> dict[str, object]:
        """An async view (flask[async]): its enqueues land in the request's scope too."""
        if order_id not in ORDERS:
            abort(404)
        await asyncio.sleep(0)  # e.g. ask the carrier for a slot
        airlock.enqueue(book_courier, order_id)
        return {"shipping": order_id}

    @app.get("/sent")
    def sent() -> list[str]:
        return SENT

    return app


if __name__ == "__main__":
    create_app().run(port=5000)
