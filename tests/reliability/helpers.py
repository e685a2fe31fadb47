"""Helpers for the reliability tests: a simulated tenant scanned in-process, a credential that asks the simulator for a
fresh token on every call (so a token that expires mid-scan is replaced the way azure-identity replaces one), an ASGI
wrapper that adds latency to chosen requests (a slow mailbox, not a slow tenant), and artefact readers.

Everything goes through the real scanner and the real msgraph-sdk pipeline; only the tenant is fake.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import SIM_EXCHANGE_URL, SimEnv, make_sim_config


class FreshTokenCredential:
    """A sync TokenCredential that mints a new simulator token per call (Graph or Exchange by the scope's host)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.issued: list[str] = []

    def get_token(self, *scopes: str, **_: Any) -> Any:
        from azure.core.credentials import AccessToken

        from scanner.simulator import tokens

        host = SIM_EXCHANGE_URL.split("//", 1)[1]
        resource = tokens.EXCHANGE_RESOURCE if host in scopes[0] else tokens.GRAPH_RESOURCE
        tok = self.app.issue_token(resource)
        self.issued.append(tok)
        return AccessToken(tok, int(time.time()) + 3600)

    def close(self) -> None:
        return None


async def read_request(receive: Any) -> tuple[bytes, Any]:
    """An ASGI request's whole body, and a ``receive`` that replays it to the wrapped app."""
    chunks: list[dict[str, Any]] = []
    while True:
        msg = await receive()
        chunks.append(msg)
        if msg["type"] != "http.request" or not msg.get("more_body"):
            break
    replay = list(chunks)

    async def again() -> dict[str, Any]:
        return replay.pop(0) if replay else {"type": "http.disconnect"}

    return b"".join(m.get("body", b"") for m in chunks), again


def replay_body(body: bytes) -> Any:
    """A ``receive`` that hands the wrapped app ``body`` (a request read, and perhaps rewritten, by a middleware)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def rewrite_body(send: Any, fix: Callable[[int, bytes], bytes]) -> Any:
    """A ``send`` that buffers the wrapped app's response and passes ``fix(status, body)`` on (content-length fixed)."""
    start: dict[str, Any] = {}
    body = bytearray()

    async def capture(msg: dict[str, Any]) -> None:
        if msg["type"] == "http.response.start":
            start.update(msg)
            return
        body.extend(msg.get("body", b""))
        if msg.get("more_body"):
            return
        data = fix(int(start.get("status", 0)), bytes(body))
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(data)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return capture


class SlowPaths:
    """ASGI middleware: requests whose path or body matches ``pattern`` wait ``seconds`` before the simulator answers
    (``times`` of them; None = all). Models one slow mailbox or one slow endpoint."""

    def __init__(self, app: Any, pattern: str, seconds: float, times: int | None = None) -> None:
        self.app = app
        self.rx = re.compile(pattern)
        self.seconds = seconds
        self.times = times
        self.hits = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body, again = await read_request(receive)
        text = scope.get("path", "") + " " + body.decode("utf-8", "replace")
        if self.rx.search(text) and (self.times is None or self.hits < self.times):
            self.hits += 1
            await asyncio.sleep(self.seconds)
        await self.app(scope, again, send)


class SmallPages:
    """ASGI middleware: a service that pages ``/users`` by ``size`` whatever ``$top`` asks (Graph may return fewer
    items than asked; clients must follow nextLink)."""

    def __init__(self, app: Any, size: int) -> None:
        self.app = app
        self.size = size

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path", "").rstrip("/").endswith("/v1.0/users"):
            qs = re.sub(rb"(\$|%24)top=\d+", b"%24top=" + str(self.size).encode(), scope.get("query_string", b""))
            scope = {**scope, "query_string": qs}
        await self.app(scope, receive, send)


class MangleJson:
    """ASGI middleware: a service answering with wrongly typed JSON. ``mangle(doc) -> doc`` is applied to every JSON
    page (top level, and each ``$batch`` sub-response body) whose ``@odata.context`` contains ``context``."""

    def __init__(self, app: Any, context: str, mangle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.app = app
        self.context = context
        self.mangle = mangle

    def _fix(self, doc: Any) -> Any:
        if isinstance(doc, dict):
            if self.context in str(doc.get("@odata.context", "")):
                return self.mangle(doc)
            if isinstance(doc.get("responses"), list):
                for r in doc["responses"]:
                    if isinstance(r, dict) and isinstance(r.get("body"), dict):
                        r["body"] = self._fix(r["body"])
        return doc

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        def fix(_status: int, data: bytes) -> bytes:
            try:
                return json.dumps(self._fix(json.loads(data))).encode()
            except ValueError:
                return data

        await self.app(scope, receive, rewrite_body(send, fix))


def env_for(tmp_path: Path, tenant: Any, app: Any, *, fresh_tokens: bool = False, asgi: Any = None,
            **sections: Any) -> SimEnv:
    env = make_sim_config(tmp_path, tenant, app, **sections)
    cred = FreshTokenCredential(app) if fresh_tokens else env.credential
    transport = httpx.ASGITransport(app=asgi) if asgi is not None else env.transport
    return SimEnv(cfg=env.cfg, credential=cred, transport=transport, tenant=tenant, app=app)


async def scan(env: SimEnv, out: Path | None = None, **kw: Any) -> Any:
    from scanner.sweep import run_scan

    return await run_scan(env.cfg, out_dir=out, **env.kwargs, **kw)


def snapshot(env: SimEnv, result: Any, upn: str) -> Any:
    from scanner.store import Store

    with Store(env.cfg.database_path) as store:
        snap = store.get_account(result.scan_id, upn)
    assert snap is not None, upn
    return snap


def gaps_of(result: Any, upn: str | None) -> dict[str, str]:
    return {e["collector"]: e["message"] for e in result.errors if e["upn"] == upn}


def assert_nothing_lost(env: SimEnv, result: Any) -> None:
    """Every user of the tenant is stored, or named in a gap (never silently missing)."""
    from scanner.store import Store

    with Store(env.cfg.database_path) as store:
        stored = {a["upn"].lower() for a in store.accounts(result.scan_id)}
    named = {e["upn"].lower() for e in result.errors if e["upn"]}
    tenant_wide = [e for e in result.errors if e["upn"] is None and e["collector"] in ("users", "account")]
    expected = {u.userPrincipalName.lower() for u in env.tenant.iter_users()}
    lost = expected - stored - named
    assert not lost or tenant_wide, sorted(lost)[:5]


def read_findings_json(out: Path) -> dict[str, Any]:
    return json.loads((out / "findings.json").read_text("utf-8"))


Factory = Callable[..., SimEnv]
