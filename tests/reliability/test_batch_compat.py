"""Services that speak Graph but not exactly like graph.microsoft.com: a gateway (or a Graph-compatible service) without
JSON batching, and ``$batch`` sub-responses whose header names are lowercase with bodies sent as JSON text.

The scan must come out the same: every account read, the same findings, no gap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scanner.simulator import SimOptions, create_app, generate_tenant
from tests.reliability.helpers import (
    assert_nothing_lost,
    env_for,
    read_findings_json,
    rewrite_body,
    scan,
    snapshot,
)

VICTIM = "megan.bowen@contoso.com"


class NoBatch:
    """ASGI middleware: ``POST /$batch`` answers ``status`` with an OData error (the endpoint does not exist here)."""

    def __init__(self, app: Any, status: int) -> None:
        self.app = app
        self.status = status
        self.refused = 0  # Graph batches refused
        self.refused_exchange = 0  # Exchange admin API batches refused
        self.single: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/$batch"):
            if scope["path"].startswith("/adminapi/"):
                self.refused_exchange += 1
            else:
                self.refused += 1
            body = json.dumps({"error": {"code": "BadRequest", "message": "Resource not found for the segment '$batch'."}})
            await send({"type": "http.response.start", "status": self.status,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body.encode()})
            return
        if scope["type"] == "http" and scope["path"].startswith("/v1.0/users/"):
            self.single.append(scope["path"])
        await self.app(scope, receive, send)


class LowercaseBatch:
    """ASGI middleware: ``$batch`` sub-responses with lowercase header names and their JSON bodies as strings."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.rewritten = 0

    def _fix(self, doc: dict[str, Any]) -> dict[str, Any]:
        for r in doc.get("responses") or []:
            headers = {str(k).lower(): v for k, v in (r.get("headers") or {}).items()}
            if isinstance(r.get("body"), (dict, list)):
                r["body"] = json.dumps(r["body"])
                headers["content-type"] = "application/json; odata.metadata=minimal"
                self.rewritten += 1
            r["headers"] = headers
        return doc

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/$batch"):
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, rewrite_body(send, lambda _s, data: json.dumps(self._fix(json.loads(data))).encode()))


def _findings(out: Path) -> set[tuple[str, str, str]]:
    return {(f["account"], f["detector"], f["severity"]) for f in read_findings_json(out)["findings"]}


@pytest.fixture
def baseline(tmp_path: Path) -> set[tuple[str, str]]:
    import asyncio

    tenant = generate_tenant(users=40, seed=7, scenarios=True)
    env = env_for(tmp_path / "base", tenant, create_app(tenant, SimOptions()))
    result = asyncio.run(scan(env, tmp_path / "base" / "out"))
    assert result.exit_code == 0
    found = _findings(tmp_path / "base" / "out")
    assert any(acct == VICTIM for acct, _, _ in found)
    return found


@pytest.mark.parametrize("status", [404, 405, 501])
def test_a_service_without_batch_is_read_request_by_request(tmp_path: Path, baseline: set[Any], status: int) -> None:
    import asyncio

    tenant = generate_tenant(users=40, seed=7, scenarios=True)
    app = create_app(tenant, SimOptions())
    gateway = NoBatch(app, status)
    env = env_for(tmp_path, tenant, app, asgi=gateway)
    result = asyncio.run(scan(env, tmp_path / "out"))
    assert result.errors == [] and result.exit_code == 0
    assert gateway.refused == 1  # asked once, then the client stops posting batches
    assert gateway.refused_exchange == 1  # the same for the Exchange admin API's batch
    assert any(p.endswith("/messageRules") for p in gateway.single)
    assert _findings(tmp_path / "out") == baseline
    assert snapshot(env, result, VICTIM).status("inbox_rules") == "collected"
    assert_nothing_lost(env, result)


def test_lowercase_sub_response_headers_and_text_bodies(tmp_path: Path, baseline: set[Any]) -> None:
    import asyncio

    tenant = generate_tenant(users=40, seed=7, scenarios=True)
    # A throttled sub-response whose "retry-after" is lowercase is still retried, not stored as a gap.
    tenant.faults.add("/messageRules", kind="throttle", times=1, upn=VICTIM, retry_after="0")
    app = create_app(tenant, SimOptions())
    wrapper = LowercaseBatch(app)
    env = env_for(tmp_path, tenant, app, asgi=wrapper)
    result = asyncio.run(scan(env, tmp_path / "out"))
    assert result.errors == [] and result.exit_code == 0
    assert wrapper.rewritten > 0 and result.stats["throttled"] >= 1
    assert _findings(tmp_path / "out") == baseline
    assert_nothing_lost(env, result)
