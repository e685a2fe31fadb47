"""Serve the simulator for real (uvicorn in a background thread) for the demo, `simulate` and benchmarks."""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn

from .app import SimulatedConnectionReset, SimulatorApp


class _DropSimulatedResets(logging.Filter):
    """Injected connection resets are intended; keep uvicorn from logging each as an application error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedConnectionReset)


logging.getLogger("uvicorn.error").addFilter(_DropSimulatedResets())


class SimulatorServer:
    """``with SimulatorServer(app, port=0) as srv: srv.graph_url, srv.exchange_url, srv.graph_token ...``"""

    def __init__(self, app: SimulatorApp, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        self.app = app
        self.host = host
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted sockets inherit TCP_NODELAY: without it headers and body go out as two segments and every
        # response waits for the client's delayed ACK (~40 ms).
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind((host, port))
        self.port = self._sock.getsockname()[1]
        # the app sets its own Date header; uvicorn's would duplicate it
        self._config = uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False,
                                      timeout_keep_alive=30, date_header=False, server_header=False,
                                      loop="auto", http="auto")
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{h}:{self.port}"

    graph_url = url
    exchange_url = url

    @property
    def tenant_id(self) -> str:
        return self.app.tenant.tenant_id

    @property
    def graph_token(self) -> str:
        return self.app.graph_token

    @property
    def exchange_token(self) -> str:
        return self.app.exchange_token

    @property
    def tenant(self):
        return self.app.tenant

    def issue_token(self, resource: str = "https://graph.microsoft.com", lifetime_s: int | None = None) -> str:
        return self.app.issue_token(resource, lifetime_s)

    def banner(self) -> str:
        return (f"graph={self.graph_url} exchange={self.exchange_url} tenant={self.tenant_id} "
                f"graph_token={self.graph_token} exchange_token={self.exchange_token}")

    def start(self) -> SimulatorServer:
        self._thread = threading.Thread(target=self._run, name="m365sweep-simulator", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("simulator server failed to start")
            self._thread.join(0.01)
        return self

    def _run(self) -> None:
        # Server.run() semantics: the loop comes from the config's loop factory (uvloop when installed, "auto");
        # a bare asyncio.run(serve()) would ignore it and serve on the slower default loop.
        self._server.run(sockets=[self._sock])

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until Ctrl-C (used by `simulate`)."""
        try:
            self._server.run(sockets=[self._sock])
        finally:
            self._sock.close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
