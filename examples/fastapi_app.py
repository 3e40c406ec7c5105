"""A FastAPI service whose side effects leave only with a successful response.

Run it:  python examples/fastapi_app.py   (serves on http://127.0.0.1:8000)

    curl -X POST 'localhost:8000/signups?email=ada@example.com'   # 201: welcome mail sent
    curl -X POST 'localhost:8000/signups?email=bad'               # 422: nothing sent
    curl -X POST 'localhost:8000/imports?count=3'                 # sync endpoint, threadpool
    curl localhost:8000/sent
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request

import airlock
from airlock.integrations.asgi import AirlockMiddleware

SENT: list[str] = []  # stands in for the mail server


def send_welcome(email: str) -> None:
    SENT.append(f"welcome {email}")


async def index_user(email: str) -> None:
    SENT.append(f"indexed {email}")


def request_scope(request: Request) -> airlock.Scope:
    """A dependency handing endpoints the request's airlock scope."""
    scope: airlock.Scope = request.state.airlock
    return scope


app = FastAPI()
app.add_middleware(AirlockMiddleware)


@app.post("/signups", status_code=201)
async def signup(email: str, scope: Annotated[airlock.Scope, Depends(request_scope)]) -> dict[str, object]:
    airlock.enqueue(send_welcome, email)
    airlock.enqueue(index_user, email)
    if "@" not in email:
        # Raised after the enqueues: the 422 response discards both.
        raise HTTPException(status_code=422, detail="not an email address")
    return {"email": email, "pending": [str(i) for i in scope.intents]}


@app.post("/imports", status_code=201)
def bulk_import(count: int) -> dict[str, int]:
    """A sync endpoint: FastAPI runs it in its threadpool, the enqueues still land in this request."""
    for n in range(count):
        airlock.enqueue(send_welcome, f"user{n}@example.com")
    return {"imported": count}


@app.get("/sent")
async def sent() -> list[str]:
    return SENT


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
