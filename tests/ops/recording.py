"""An ASGI wrapper that records every request reaching the simulator (method, path, body), so a test can tell which
mailboxes a scan read — including the per-user requests inside ``$batch`` bodies and Exchange InvokeCommand bodies.
It observes the fake tenant's HTTP traffic; it changes nothing."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from tests.reliability.helpers import replay_body

_USER_PATH = re.compile(r"/users/([^/?]+)/", re.I)


class RecordingApp:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, str, bytes]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # tenant, graph_token, exchange_token … of the simulator app
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        with self._lock:
            self.requests.append((scope["method"], scope["path"], body))
        replay = replay_body(body)

        await self.app(scope, replay, send)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def targets(self) -> set[str]:
        """Lower-cased user ids / UPNs / addresses that per-mailbox requests named."""
        out: set[str] = set()
        with self._lock:
            reqs = list(self.requests)
        for _method, path, body in reqs:
            out.update(m.lower() for m in _USER_PATH.findall(path))
            if not body:
                continue
            try:
                data = json.loads(body)
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            for r in data.get("requests") or []:  # $batch
                out.update(m.lower() for m in _USER_PATH.findall(str(r.get("url", ""))))
            cmd = data.get("CmdletInput") or {}
            params = cmd.get("Parameters") or {}
            if cmd.get("CmdletName") in ("Get-InboxRule", "Get-MailboxPermission", "Get-RecipientPermission",
                                         "Get-CASMailbox", "Get-Mailbox", "Get-MailboxFolderStatistics"):
                for key in ("Identity", "Mailbox"):
                    v = params.get(key)
                    if isinstance(v, str):
                        out.add(v.lower())
        return out
