"""Effects that wait for the database: SQLAlchemy sessions, sync and async.

Run it:  python examples/sqlalchemy_app.py   (uses SQLite files in a temp directory)

The receipt for an order is enqueued next to the INSERT; it is sent only once
the transaction it was made in has committed, never for an order that was
rolled back, and never for work done inside a savepoint that rolled back.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from sqlalchemy import String, create_engine, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import airlock
from airlock.integrations.sqlalchemy import AsyncSQLAlchemyScope, SQLAlchemyScope

SENT: list[str] = []  # stands in for the mail server


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "airlock_web_example_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    item: Mapped[str] = mapped_column(String(50))


def send_receipt(item: str) -> None:
    SENT.append(f"receipt for {item}")


async def send_receipt_async(item: str) -> None:
    SENT.append(f"receipt for {item}")


class OutOfStock(Exception):
    pass


def place_order(session: Session, item: str) -> None:
    """Domain code: writes the row and says which effect it implies."""
    session.add(Order(item=item))
    airlock.enqueue(send_receipt, item)
    if item == "unicorn":
        raise OutOfStock(item)


def main(url: str) -> dict[str, list[str]]:
    SENT.clear()
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        # Committed: the receipt is sent after COMMIT.
        with session.begin(), airlock.scope(_cls=SQLAlchemyScope, session=session):
            place_order(session, "tea")
            assert SENT == []  # still waiting for the commit
        # A savepoint that rolls back takes its intents with it.
        with session.begin(), airlock.scope(_cls=SQLAlchemyScope, session=session):
            try:
                with session.begin_nested():
                    place_order(session, "unicorn")
            except OutOfStock:
                pass
        # A transaction that rolls back sends nothing.
        try:
            with session.begin(), airlock.scope(_cls=SQLAlchemyScope, session=session):
                place_order(session, "unicorn")
        except OutOfStock:
            pass
    # A script: the receipt is enqueued before any transaction (tied to the next
    # one, which commit() begins), then an attribute is read after the commit
    # (a refresh: a new read transaction, closed without commit at the end).
    with Session(engine) as session:
        with airlock.scope(_cls=SQLAlchemyScope, session=session):
            scone = Order(item="scone")
            session.add(scone)
            airlock.enqueue(send_receipt, "scone")
            session.commit()
            assert scone.id is not None
        orders = list(session.scalars(select(Order.item).order_by(Order.id)))
    engine.dispose()
    return {"orders": orders, "sent": list(SENT)}


async def amain(url: str) -> dict[str, list[str]]:
    SENT.clear()
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    async with AsyncSession(engine) as session:
        async with session.begin(), airlock.scope(_cls=AsyncSQLAlchemyScope, session=session):
            session.add(Order(item="coffee"))
            airlock.enqueue(send_receipt_async, "coffee")  # a coroutine task, awaited after COMMIT
        try:
            async with session.begin(), airlock.scope(_cls=AsyncSQLAlchemyScope, session=session):
                session.add(Order(item="unicorn"))
                airlock.enqueue(send_receipt_async, "unicorn")
                raise OutOfStock("unicorn")
        except OutOfStock:
            pass
        orders = list(await session.scalars(select(Order.item).order_by(Order.id)))
    await engine.dispose()
    return {"orders": orders, "sent": list(SENT)}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        print("sync: ", main(f"sqlite:///{Path(directory) / 'shop.db'}"))
        print("async:", asyncio.run(amain(f"sqlite+aiosqlite:///{Path(directory) / 'ashop.db'}")))
