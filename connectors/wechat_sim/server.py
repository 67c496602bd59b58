"""Run the simulator: uvicorn in a background thread (tests, demo) or in the foreground (CLI)."""

from __future__ import annotations

import json
import socket
import threading
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import uvicorn

from connectors.wechat_sim.app import build_app
from connectors.wechat_sim.clock import SimClock
from connectors.wechat_sim.messaging import Messaging
from connectors.wechat_sim.population import Action, Population
from connectors.wechat_sim.state import Credentials, SimState
from scrm.errors import ConnectorError

__all__ = ["SimulatorServer"]


class SimulatorServer:
    """A running WeChat simulator over ``population``.

    Parameters
    ----------
    population : Population
        What :func:`~connectors.wechat_sim.generate_population` made.
    appid, secret, token, encoding_aes_key : str, optional
        The credentials it accepts; generated when not given (see :attr:`credentials`).
    host, port : str, int
        Where to listen; port 0 picks a free port (see :attr:`base_url`).
    clock_at : "end", "start" or datetime
        Where the clock starts: the end of the activity period (a sync sees the final state), its start,
        or a given time.
    quotas, per_minute : dict, optional
        Override daily and per-minute call limits per endpoint (e.g. ``{"user/get": 3}``; None = no limit).
    orders_account : str
        The ``account`` column of ``/_sim/orders.csv``.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        population: Population,
        *,
        appid: str | None = None,
        secret: str | None = None,
        token: str | None = None,
        encoding_aes_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock_at: Literal["end", "start"] | datetime = "end",
        quotas: dict[str, int | None] | None = None,
        per_minute: dict[str, int | None] | None = None,
        orders_account: str = "demo",
    ) -> None:
        self.population = population
        self.credentials = Credentials.generate(appid, secret, token, encoding_aes_key)
        if clock_at == "end":
            at = population.end
        elif clock_at == "start":
            at = population.start
        else:
            at = clock_at
        self.clock = SimClock(at)
        self.state = SimState(population, self.clock, self.credentials, quotas=quotas, per_minute=per_minute)
        self.messaging = Messaging(self.state)
        self.app = build_app(self.state, self.messaging, orders_account=orders_account)
        self.host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._bound_port: int | None = None

    # ---- credentials and addresses -----------------------------------------------------------------
    @property
    def appid(self) -> str:
        return self.credentials.appid

    @property
    def secret(self) -> str:
        return self.credentials.secret

    @property
    def token(self) -> str:
        """The callback token (signs pushes), not an access_token."""
        return self.credentials.token

    @property
    def encoding_aes_key(self) -> str:
        return self.credentials.encoding_aes_key

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise ConnectorError("the simulator is not running: call start() first")
        return self._bound_port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``; wechatpy's ``API_BASE_URL`` is ``base_url + "/cgi-bin/"``."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_base_url(self) -> str:
        return self.base_url + "/cgi-bin/"

    @property
    def share_reads_url(self) -> str:
        return self.base_url + "/track/share_reads"

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
        self._socket = sock
        self._bound_port = int(sock.getsockname()[1])
        return sock

    def start(self) -> SimulatorServer:
        """Serve in a background thread; returns once the server accepts connections."""
        if self._thread is not None:
            return self
        sock = self._socket or self._bind()
        self._server = uvicorn.Server(self._config())
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="wechat-sim", daemon=True
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise ConnectorError("the simulator failed to start")
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

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- inspection and control --------------------------------------------------------------------
    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Logged requests (time, method, path, query with access_token redacted, json, errcode)."""
        with self.state.lock:
            return [dict(e) for e in self.state.log[since:]]

    def save_log(self, path: str | Path) -> Path:
        """Write the request log as JSON Lines."""
        path = Path(path)
        with path.open("w", encoding="utf-8") as out:
            for entry in self.requests():
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return path

    def reject_tokens(self, on: bool = True) -> None:
        """Make every token-checked call answer 40001 (to test bounded token refresh)."""
        with self.state.lock:
            self.state.rejecting = on

    def actions(
        self, since: datetime | int | None = None, until: datetime | int | None = None
    ) -> list[Action]:
        """The generated follower actions with ``since <= time < until``."""

        def ts(v: datetime | int | None) -> int | None:
            return int(v.timestamp()) if isinstance(v, datetime) else v

        return self.population.actions_between(ts(since), ts(until))

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Messages delivered so far (custom, template, mass, preview), in order."""
        with self.state.lock:
            return list(self.messaging.sent)
