"""A five-minute tour of airlock's core: run with ``make tour``.

Every step prints what ran, so you can see when (and whether) effects escape.
"""

from __future__ import annotations

import asyncio

import airlock

ran: list[str] = []


def send_email(order_id: int) -> None:
    ran.append(f"send_email({order_id})")


def notify_warehouse(order_id: int) -> None:
    ran.append(f"notify_warehouse({order_id})")


async def push_notification(order_id: int) -> None:
    await asyncio.sleep(0)
    ran.append(f"push_notification({order_id})")


def process(order_id: int) -> None:
    """Domain code: says what should happen, not when."""
    airlock.enqueue(notify_warehouse, order_id)
    airlock.enqueue(send_email, order_id)


def step(title: str) -> None:
    ran.clear()
    print(f"\n== {title}")


def show() -> None:
    print("   ran:", ", ".join(ran) if ran else "nothing")


step("1. Buffering: nothing runs inside the scope, everything runs at its end")
with airlock.scope() as scope:
    process(1)
    print(f"   inside the scope: {len(scope.intents)} intents buffered, ran: {ran or 'nothing'}")
show()

step("2. Discard on error: the scope ends with an exception, nothing escapes")
try:
    with airlock.scope():
        process(2)
        raise RuntimeError("payment declined")
except RuntimeError as error:
    print(f"   the error still propagates: {error!r}")
show()

step("3. Dry run: DropAll keeps the intents for inspection and dispatches none")
with airlock.scope(policy=airlock.DropAll()) as scope:
    process(3)
    for intent in scope.intents:
        print(f"   would run: {intent}")
show()

step("4. AssertNoEffects: a pure function that is not pure fails at the enqueue line")
try:
    with airlock.scope(policy=airlock.AssertNoEffects()):
        process(4)
except airlock.PolicyViolation as error:
    print(f"   PolicyViolation: {error}")
show()

step("5. Nesting: an inner scope's intents wait for the outermost scope")
with airlock.scope() as outer:
    with airlock.scope() as inner:
        process(5)
    print(f"   inner flushed; outer captured {len(outer.captured_intents)}, ran: {ran or 'nothing'}")
show()

step("6. Nesting is safe: an inner DropAll is not overridden by a permissive outer scope")
with airlock.scope():
    airlock.enqueue(send_email, 6)
    with airlock.scope(policy=airlock.DropAll()):
        airlock.enqueue(notify_warehouse, 6)
show()

step("7. A failing effect does not cancel the others; all failures are reported together")


def flaky(order_id: int) -> None:
    raise ConnectionError("SMTP down")


try:
    with airlock.scope():
        airlock.enqueue(flaky, 7)
        airlock.enqueue(notify_warehouse, 7)
except airlock.DispatchError as error:
    print(f"   DispatchError: {[(i.name, repr(e)) for i, e in error.failures]}")
show()


step("8. Async: coroutine tasks are awaited in order at the end of an async scope")


async def handler() -> None:
    async with airlock.scope():
        airlock.enqueue(push_notification, 8)
        airlock.enqueue(send_email, 8)


asyncio.run(handler())
show()
print()
