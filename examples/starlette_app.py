"""A Starlette shop whose side effects leave only with a successful response.

Run it:  python examples/starlette_app.py   (serves on http://127.0.0.1:8000)

    curl -X POST localhost:8000/orders -d '{"item": "tea", "quantity": 2}'   # 201: receipt sent
    curl -X POST localhost:8000/orders -d '{"item": "tea", "quantity": 99}'  # 409: nothing sent
    curl localhost:8000/sent                                                # what escaped so far
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import airlock
from airlock.integrations.asgi import AirlockMiddleware

STOCK = 10
ORDERS: dict[int, tuple[str, int]] = {}
SENT: list[str] = []  # stands in for the mail server and the warehouse API


def send_receipt(order_id: int) -> None:
    """A plain (sync) task: airlock runs it in a worker thread at flush."""
    SENT.append(f"receipt for order {order_id}")


async def notify_warehouse(order_id: int) -> None:
    """A coroutine task: airlock awaits it on the event loop at flush."""
    await asyncio.sleep(0)
    SENT.append(f"warehouse notified of order {order_id}")


def place_order(item: str, quantity: int) -> int:
    """Domain code: records the order and says which effects it implies, not when they run."""
    order_id = len(ORDERS) + 1
    ORDERS[order_id] = (item, quantity)
    airlock.enqueue(send_receipt, order_id)
    airlock.enqueue(notify_warehouse, order_id)
    return order_id


async def create_order(request: Request) -> JSONResponse:
    body = await request.json()
    order_id = place_order(body["item"], int(body["quantity"]))
    if int(body["quantity"]) > STOCK:
        # A 4xx response: the middleware discards the receipt and the notification.
        return JSONResponse({"error": "not enough stock", "order": order_id}, status_code=409)
    pending = [str(intent) for intent in request.state.airlock.intents]
    return JSONResponse({"order": order_id, "pending": pending}, status_code=201)


async def sent(request: Request) -> JSONResponse:
    return JSONResponse(SENT)


app = Starlette(
    routes=[Route("/orders", create_order, methods=["POST"]), Route("/sent", sent)],
    middleware=[Middleware(AirlockMiddleware)],
)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
