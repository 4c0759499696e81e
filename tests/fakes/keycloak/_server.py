"""Serve a ``FakeKeycloak`` over real HTTP: uvicorn on a background thread, stoppable and
restartable on the same port (to simulate Keycloak going away and coming back)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import uvicorn

if TYPE_CHECKING:
    from ._fake import FakeKeycloak

__all__ = ("StandInServer", "serve_asgi", "serve_standin")


class ThreadedASGIServer:
    """Any ASGI app served by uvicorn on a background thread, on a fixed (or free) port."""

    startup_timeout = 10.0

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def port(self) -> int:
        """The bound port (known after the first ``start()``; kept across restarts)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the listening socket."""
        return f"http://{self.host}:{self._port}"

    @property
    def running(self) -> bool:
        """True while the server accepts connections."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ThreadedASGIServer:
        """Bind (the same port as before, if any) and serve; returns once uvicorn is serving."""
        if self.running:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        sock.listen(128)
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name=f"standin-{self._port}",
            daemon=True,
        )
        self._server, self._thread, self._sock = server, thread, sock
        thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not server.started:  # uvicorn offers no callback; poll its flag
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start on {self.base_url}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Shut down; afterwards connections to the port are refused."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> ThreadedASGIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> ThreadedASGIServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


class StandInServer(ThreadedASGIServer):
    """Serves ``fake.app`` and points ``fake.issuer_base`` at itself (or at ``public_base``).

    Usable as ``with StandInServer(fake) as server:`` (sync fixtures) or ``async with``.
    """

    def __init__(
        self,
        fake: FakeKeycloak,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        public_base: str | None = None,
    ) -> None:
        super().__init__(fake.app, host=host, port=port)
        self.fake = fake
        self.public_base = public_base

    @property
    def issuer(self) -> str:
        """The realm issuer served here."""
        return self.fake.issuer

    def start(self) -> StandInServer:
        """Serve and set ``fake.issuer_base``."""
        super().start()
        self.fake.issuer_base = (self.public_base or self.base_url).rstrip("/")
        return self

    def __enter__(self) -> StandInServer:
        return self.start()

    async def __aenter__(self) -> StandInServer:
        return await asyncio.to_thread(self.start)


@contextmanager
def serve_standin(
    fake: FakeKeycloak, host: str = "127.0.0.1", port: int = 0
) -> Iterator[StandInServer]:
    """Context manager form of ``StandInServer(fake).start()`` / ``stop()``."""
    server = StandInServer(fake, host=host, port=port).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serve_asgi(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[ThreadedASGIServer]:
    """Serve any ASGI app on a thread (e.g. a back-channel logout receiver in tests)."""
    server = ThreadedASGIServer(app, host=host, port=port).start()
    try:
        yield server
    finally:
        server.stop()
