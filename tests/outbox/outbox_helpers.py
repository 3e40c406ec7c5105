"""Shared by the outbox tests: where the support modules live, and the subprocess environment."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airlock.outbox import SQLAlchemyStorage

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for relay/app subprocesses: our support modules importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


@contextmanager
def fresh_storage(url: str) -> Iterator[SQLAlchemyStorage]:
    """A fresh outbox table (``airlock_outbox_<random>``) in the database at ``url``, dropped after."""
    from airlock.outbox import SQLAlchemyStorage

    storage = SQLAlchemyStorage.from_url(url, f"airlock_outbox_{uuid.uuid4().hex[:10]}")
    storage.create_table()
    try:
        yield storage
    finally:
        storage.close()
        storage.drop_table()
        storage.engine.dispose()


class TcpProxy:
    """A loopback TCP port in front of a real server, that the test takes down and brings back.

    Down means what an outage means to a client: the port refuses connections
    and every open connection through it is cut. The shared server itself is
    never touched.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        import socket

        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []

    def url(self, url: str) -> str:
        """``url`` pointed at this proxy."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        auth = parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@127.0.0.1:{self.port}" if auth else f"127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def up(self) -> None:
        import socket
        import threading

        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen()
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        import socket

        if self._server is not None:
            try:  # wakes the thread blocked in accept() (close() alone would not, on Linux)
                self._server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._server.close()
            self._server = None
        for conn in self._conns:
            self._cut(conn)
        self._conns.clear()

    def _accept(self, server: Any) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            if self._server is not server:  # taken down meanwhile: an outage refuses it
                for s in (client, upstream):
                    self._cut(s)
                return
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _cut(sock: Any) -> None:
        """End a proxied connection for both ends. shutdown() first: close() alone leaves the
        connection open while the other direction's thread is blocked in recv() on it, and
        the database would keep that session (and its locks) after the client is gone."""
        import socket

        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    @classmethod
    def _pipe(cls, src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                cls._cut(s)
