"""A tiny webhook receiver on 127.0.0.1 (port 0) in a thread, for notification tests.

``fail_first=N`` answers the first N POSTs with ``fail_status``; every POST (failed or not) is recorded. Tests wait on
:meth:`Receiver.wait_for` (a condition variable), never on sleeps.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, *, fail_first: int = 0, fail_status: int = 500, retry_after: str | None = None) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.attempts: list[dict[str, Any]] = []  # every POST
        self.received: list[Any] = []  # bodies of the POSTs answered 2xx
        self._cond = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with owner._cond:
                    n = len(owner.attempts)
                    owner.attempts.append({"path": self.path, "headers": dict(self.headers), "body": raw})
                    fail = n < owner.fail_first
                    if not fail:
                        owner.received.append(json.loads(raw))
                    owner._cond.notify_all()
                self.send_response(owner.fail_status if fail else 200)
                if fail and owner.retry_after is not None:
                    self.send_header("Retry-After", owner.retry_after)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook/SECRETPART"

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.received) >= n, timeout=timeout)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
