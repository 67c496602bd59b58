"""Serve an ASGI app with uvicorn: in a background thread (tests, demo) or in the foreground."""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

from scrm.errors import ConnectorError

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """Run ``app`` on ``host:port`` (port 0: any free port); a context manager.

    The listening socket is opened by :meth:`bind` (or on start), so :attr:`port` is known before
    serving begins.
    """

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._bound_port: int | None = None

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise ConnectorError("the server is not running: call start() first")
        return self._bound_port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.host}:{self.port}"

    # ---- running -----------------------------------------------------------------------------------
    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", ws="none", timeout_keep_alive=30
        )

    def bind(self) -> int:
        """Open the listening socket now (before serving) and return its port."""
        if self._socket is None:
            self._bind()
        return self.port

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on such sockets (without it every small
        # answer waits ~40 ms for a delayed ACK).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError as exc:
            sock.close()
            raise ConnectorError(
                f"cannot listen on {self.host}:{self._port}: {exc}; pick another --port"
            ) from exc
        sock.set_inheritable(True)
        sock.listen(2048)  # connections made before serving starts wait in the backlog
        self._socket = sock
        self._bound_port = int(sock.getsockname()[1])
        return sock

    def start(self) -> Self:
        """Serve in a background thread; returns once the server accepts connections."""
        if self._thread is not None:
            return self
        sock = self._socket or self._bind()
        self._server = uvicorn.Server(self._config())
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"asgi-{self.host}:{self._bound_port}",
            daemon=True,
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise ConnectorError("the server failed to start")
            self._thread.join(0.01)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C)."""
        sock = self._socket or self._bind()
        self._server = uvicorn.Server(self._config())
        try:
            self._server.run(sockets=[sock])
        finally:
            sock.close()

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
