"""The two Exchange reads per mailbox (Get-InboxRule -IncludeHidden, Get-MailboxPermission) go 10 to a request through
the admin API's JSON batch (``POST /adminapi/beta/{tenant}/$batch``), with the same results, gaps and findings as one
cmdlet per request; a throttled sub-request is retried after its Retry-After, a failed one is read on its own, one with
a next page is read again whole. (A service without the batch: tests/reliability/test_batch_compat.py.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from scanner.simulator import SimOptions, create_app, generate_tenant
from tests.reliability.helpers import (
    assert_nothing_lost,
    env_for,
    gaps_of,
    read_findings_json,
    rewrite_body,
    scan,
    snapshot,
)

HIDDEN = "isaiah.langer@contoso.com"  # a MAPI-hidden rule redirecting all mail (visible only to Get-InboxRule)
DELEGATE = "megan.bowen@contoso.com"  # FullAccess granted to an external guest


def _findings(out: Path) -> set[tuple[str, str, str]]:
    return {(f["account"], f["detector"], f["severity"]) for f in read_findings_json(out)["findings"]}


def _scan(tmp_path: Path, tenant: Any, app: Any, **scan_section: Any) -> tuple[Any, Any, set[Any]]:
    env = env_for(tmp_path, tenant, app, scan=scan_section)
    result = asyncio.run(scan(env, tmp_path / "out"))
    return env, result, _findings(tmp_path / "out")


def test_batched_and_single_cmdlet_scans_find_the_same_with_a_tenth_of_the_requests(tmp_path: Path) -> None:
    t1 = generate_tenant(users=60, seed=7, scenarios=True)
    env, batched, found = _scan(tmp_path / "batched", t1, app1 := create_app(t1, SimOptions()))
    t2 = generate_tenant(users=60, seed=7, scenarios=True)
    _, single, found_single = _scan(tmp_path / "single", t2, app2 := create_app(t2, SimOptions()),
                                    exchange_batch=False)
    assert batched.errors == [] and single.errors == []
    assert found == found_single
    assert (HIDDEN, "mail.inbox_rule_hidden") in {(a, d) for a, d, _ in found}
    assert snapshot(env, batched, DELEGATE).get("delegates")
    # The same cmdlets ran; batched, they took one request per 10 (the tenant-wide reads stay single).
    cmdlets = batched.stats["by_class"]["exchange"]
    assert cmdlets == single.stats["by_class"]["exchange"]
    assert app1.counters["requests"]["exchange"] == app2.counters["requests"]["exchange"]
    assert app1.counters["requests"].get("exchange_batch", 0) >= cmdlets // 20
    assert "exchange_batch" not in app2.counters["requests"]
    assert batched.stats["by_service"]["exchange"] * 3 < single.stats["by_service"]["exchange"]


def test_a_throttled_sub_request_is_retried_in_a_later_batch(tmp_path: Path) -> None:
    tenant = generate_tenant(users=40, seed=7, scenarios=True)
    tenant.faults.add("Get-InboxRule", kind="throttle", times=3, upn=HIDDEN, retry_after="0")
    app = create_app(tenant, SimOptions())
    env, result, found = _scan(tmp_path, tenant, app)
    assert result.errors == [] and result.exit_code != 2
    assert result.stats["throttled"] >= 3
    assert (HIDDEN, "mail.inbox_rule_hidden") in {(a, d) for a, d, _ in found}
    assert app.counters["requests"]["exchange_batch"] > 0
    assert_nothing_lost(env, result)


@pytest.mark.parametrize("status", [404, 500])
def test_a_failing_sub_request_is_the_same_gap_as_a_failing_cmdlet(tmp_path: Path, status: int) -> None:
    gaps = {}
    for batch in (True, False):
        tenant = generate_tenant(users=40, seed=7, scenarios=True)
        tenant.faults.add("Get-MailboxPermission", kind="status", status=status, times=None, upn=DELEGATE,
                          message="The operation couldn't be performed because object couldn't be found.")
        env, result, _ = _scan(tmp_path / str(batch), tenant, create_app(tenant, SimOptions()),
                               exchange_batch=batch, max_retries=1)
        assert [e["upn"] for e in result.errors] == [DELEGATE]
        gaps[batch] = gaps_of(result, DELEGATE)
        assert snapshot(env, result, DELEGATE).status("inbox_rules") == "collected"
        assert_nothing_lost(env, result)
    assert set(gaps[True]) == {"delegates"}
    assert gaps[True] == gaps[False]


def test_a_sub_response_with_a_next_page_is_read_again_whole(tmp_path: Path) -> None:
    from scanner.graph.factory import connect

    tenant = generate_tenant(users=20, seed=7, scenarios=True)
    tenant.add_rule(HIDDEN, displayName="second", conditions={}, actions={"markAsRead": True})
    tenant.add_rule(HIDDEN, displayName="third", conditions={}, actions={"markAsRead": True})
    app = create_app(tenant, SimOptions())
    env = env_for(tmp_path, tenant, app)
    others = [u.userPrincipalName for u in tenant.iter_users()][:4]
    calls = [("Get-InboxRule", {"Mailbox": m, "IncludeHidden": True}) for m in [HIDDEN, *others]]

    async def run() -> tuple[list[Any], list[Any]]:
        conn = connect(env.cfg, **env.kwargs)
        try:
            conn.exchange.page_size = 2  # HIDDEN's rules take two pages
            many = await conn.exchange.invoke_many(calls)
            single = [await conn.exchange.invoke(c, p) for c, p in calls]
            return many, single
        finally:
            await conn.aclose()

    many, single = asyncio.run(run())
    assert len(single[0]) >= 3
    assert [[r["Name"] for r in rows] for rows in many] == [[r["Name"] for r in rows] for rows in single]


def test_invoke_many_batches_reads_only(tmp_path: Path) -> None:
    from scanner.graph.factory import connect

    tenant = generate_tenant(users=5, seed=7, scenarios=False)
    env = env_for(tmp_path, tenant, create_app(tenant, SimOptions()))

    async def run() -> None:
        conn = connect(env.cfg, **env.kwargs)
        try:
            with pytest.raises(ValueError, match="reads only"):
                await conn.exchange.invoke_many([("Set-Mailbox", {"Identity": "x"}), ("Get-Mailbox", {})])
        finally:
            await conn.aclose()

    asyncio.run(run())


# ---- the simulator's batch endpoint ----------------------------------------------------------------------------------
def _post_batch(app: Any, tenant: Any, requests: list[dict[str, Any]]) -> httpx.Response:
    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as c:
            return await c.post(f"/adminapi/beta/{tenant.tenant_id}/$batch", json={"requests": requests},
                                headers={"Authorization": f"Bearer {app.exchange_token}"})
    return asyncio.run(run())


def _sub(i: Any, cmdlet: str, params: dict[str, Any], url: str) -> dict[str, Any]:
    return {"id": str(i), "method": "POST", "url": url, "headers": {"Content-Type": "application/json"},
            "body": {"CmdletInput": {"CmdletName": cmdlet, "Parameters": params}}}


def test_simulator_batch_answers_each_sub_request_by_id() -> None:
    tenant = generate_tenant(users=10, seed=7, scenarios=True)
    app = create_app(tenant, SimOptions())
    absolute = f"https://outlook.office365.com/adminapi/beta/{tenant.tenant_id}/InvokeCommand"
    relative = f"/adminapi/beta/{tenant.tenant_id}/InvokeCommand"
    resp = _post_batch(app, tenant, [
        _sub("a", "Get-InboxRule", {"Mailbox": HIDDEN, "IncludeHidden": True}, absolute),
        _sub("b", "Get-InboxRule", {"Mailbox": HIDDEN}, relative),
        _sub("c", "Get-MailboxPermission", {"Identity": "nobody@contoso.com"}, relative),
        _sub("d", "Get-Nothing", {}, relative),
    ])
    assert resp.status_code == 200
    by_id = {r["id"]: r for r in orjson.loads(resp.content)["responses"]}
    assert "Microsoft.Exchange.Sync" in [r["Name"] for r in by_id["a"]["body"]["value"]]
    # without -IncludeHidden the hidden rule is not listed
    assert "Microsoft.Exchange.Sync" not in [r["Name"] for r in by_id["b"]["body"]["value"]]
    assert by_id["c"]["status"] == 404 and "couldn't be found" in orjson.dumps(by_id["c"]["body"]).decode()
    assert by_id["d"]["status"] == 403


def test_simulator_batch_refuses_more_than_ten_and_non_invoke_urls() -> None:
    tenant = generate_tenant(users=10, seed=7, scenarios=False)
    app = create_app(tenant, SimOptions())
    url = f"/adminapi/beta/{tenant.tenant_id}/InvokeCommand"
    assert _post_batch(app, tenant, [_sub(i, "Get-Mailbox", {}, url) for i in range(11)]).status_code == 400
    assert _post_batch(app, tenant, [_sub(1, "Get-Mailbox", {}, "/v1.0/users")]).status_code == 400
    off = create_app(tenant, SimOptions(exchange_batch=False))
    assert _post_batch(off, tenant, [_sub(1, "Get-Mailbox", {}, url)]).status_code == 404


class TextBodies:
    """ASGI middleware: Exchange ``$batch`` sub-responses with lowercase header names and their JSON bodies as text."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.rewritten = 0

    def _fix(self, doc: dict[str, Any]) -> dict[str, Any]:
        for r in doc.get("responses") or []:
            r["headers"] = {str(k).lower(): v for k, v in (r.get("headers") or {}).items()}
            if isinstance(r.get("body"), dict):
                r["body"] = orjson.dumps(r["body"]).decode()
                self.rewritten += 1
        return doc

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/$batch") or "/adminapi/" not in scope["path"]:
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, rewrite_body(send, lambda _s, data: orjson.dumps(self._fix(orjson.loads(data)))))


def test_sub_response_bodies_sent_as_json_text_are_read_in_the_batch(tmp_path: Path) -> None:
    tenant = generate_tenant(users=40, seed=7, scenarios=True)
    app = create_app(tenant, SimOptions())
    gateway = TextBodies(app)
    env = env_for(tmp_path, tenant, app, asgi=gateway)
    result = asyncio.run(scan(env, tmp_path / "out"))
    assert result.errors == []
    assert gateway.rewritten > 40
    assert (HIDDEN, "mail.inbox_rule_hidden") in {(a, d) for a, d, _ in _findings(tmp_path / "out")}
    # read from the batches themselves, not again one by one
    assert app.counters["requests"]["exchange"] == result.stats["by_class"]["exchange"]


class UnroutedSubRequests:
    """ASGI middleware: the Exchange ``$batch`` envelope is taken (200) but every sub-request is refused with a 400, as
    a service that does not route the InvokeCommand URL inside a batch would answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    @staticmethod
    def _refuse(doc: dict[str, Any]) -> dict[str, Any]:
        return {"responses": [{"id": r.get("id"), "status": 400, "headers": {"Content-Type": "application/json"},
                               "body": {"error": {"code": "BadRequest", "message": "Invalid request URL."}}}
                              for r in doc.get("responses") or []]}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/$batch") or "/adminapi/" not in scope["path"]:
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, rewrite_body(send, lambda _s, data: orjson.dumps(self._refuse(orjson.loads(data)))))


def test_a_first_batch_whose_every_sub_request_is_refused_turns_batching_off(tmp_path: Path) -> None:
    tenant = generate_tenant(users=40, seed=7, scenarios=True)
    app = create_app(tenant, SimOptions())
    env = env_for(tmp_path, tenant, app, asgi=UnroutedSubRequests(app))
    result = asyncio.run(scan(env, tmp_path / "out"))
    assert result.errors == [] and gaps_of(result, HIDDEN) == {}
    assert (HIDDEN, "mail.inbox_rule_hidden") in {(a, d) for a, d, _ in _findings(tmp_path / "out")}
    assert snapshot(env, result, DELEGATE).get("delegates")
    assert app.counters["requests"]["exchange_batch"] == 1  # the probe only; then one cmdlet per request
    assert_nothing_lost(env, result)
