"""Say which extra to install when an integration's framework is missing.

Each integration imports its framework at module top inside ``requires``::

    from ._extras import requires

    with requires("rq"):
        from redis import Redis
        from rq import Queue

so ``import airlock.integrations.executors.rq`` without RQ fails with an
``ImportError`` that ends ``pip install "airlock-py[rq]"`` rather than naming
whichever module happened to be imported first (``redis``, ``asgiref``, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["requires"]


@contextmanager
def requires(extra: str) -> Iterator[None]:
    """Turn a missing module in the block into an ``ImportError`` naming ``extra``.

    Only a module that is not installed (``ModuleNotFoundError``) is translated:
    an installed framework that fails while importing keeps its own error.
    The original error stays attached as ``__cause__``.
    """
    try:
        yield
    except ModuleNotFoundError as missing:
        raise ModuleNotFoundError(
            f"{missing}: this airlock integration needs the {extra!r} extra: "
            f'pip install "airlock-py[{extra}]"',
            name=missing.name,
            path=missing.path,
        ) from missing
