"""The tenant-wide phase overlaps per-account work, and its large sources stream into the scan database (issue 8).

* Per-account requests (a mailbox's inbox rules) go out while the registration report is still unanswered: the
  transport in front of the simulator holds the report until it has seen a ``messageRules`` sub-request. A scan that
  read the report before any per-account work would never send one, and the guard below would report it.
* Get-Mailbox / Get-CASMailbox / the registration report are not in the ``tenant_data`` blob (only a marker), their
  rows are dropped once the scan is finished, and the snapshots still carry what they joined (forwarding, protocols,
  registration) — the planted forwarding is found.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson

from scanner.store import Store
from scanner.sweep import TENANT_KEY, run_scan
from tests.conftest import _create_app, make_sim_config


class HoldReport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.rules_seen = asyncio.Event()
        self.released_by: str | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/$batch"):
            body = orjson.loads(await request.aread())
            if any("messageRules" in r["url"] for r in body.get("requests", [])):
                self.rules_seen.set()
        elif "userRegistrationDetails" in request.url.path:
            try:
                # A deadlock guard, not a timing assertion: normally released within milliseconds.
                await asyncio.wait_for(self.rules_seen.wait(), 60)
                self.released_by = self.released_by or "rules"
            except TimeoutError:
                self.released_by = "timeout"
        return await self.inner.handle_async_request(request)


async def test_accounts_are_read_while_the_registration_report_is_pending(tmp_path: Path) -> None:
    from scanner.simulator import generate_tenant

    tenant = generate_tenant(users=40, seed=9, scenarios=True)
    app = _create_app(tenant)
    env = make_sim_config(tmp_path, tenant, app)
    hold = HoldReport(env.transport)
    result = await run_scan(env.cfg, credential=env.credential, transport=hold)

    assert hold.released_by == "rules"
    assert not [e for e in result.errors if e.get("collector") == "registration"]
    with Store(env.cfg.database_path) as store:
        snaps = list(store.iter_accounts(result.scan_id))
    assert snaps and all(s.registration is not None and not hasattr(s.registration, "reason") for s in snaps)
    assert any(s.registration.methods_registered for s in snaps)


async def test_large_tenant_sources_stream_to_the_database_and_are_dropped_after_the_scan(tmp_path: Path) -> None:
    from scanner.simulator import generate_tenant

    tenant = generate_tenant(users=30, seed=4, scenarios=False)
    victim = next(u for u in tenant.iter_users() if u.has_mailbox and u.accountEnabled is not False
                  and u.userType != "Guest")
    tenant.set_forwarding(victim, smtp="exfil@evil.example")
    app = _create_app(tenant)
    env = make_sim_config(tmp_path, tenant, app)
    result = await run_scan(env.cfg, credential=env.credential, transport=env.transport)

    with Store(env.cfg.database_path) as store:
        blob = store.get_tenant_data(result.scan_id, TENANT_KEY)
        left = [t for t in store.db.table_names() if t.startswith("scan_rows")]
        snap = store.get_account(result.scan_id, victim.userPrincipalName)
        findings = store.findings(result.scan_id, victim.userPrincipalName)
    for name in ("mailboxes", "cas", "registration"):
        assert blob["data"][name] == {"$rows": name}
    assert left == []
    assert snap.forwarding.forwarding_smtp_address == "exfil@evil.example"
    assert type(snap.protocols).__name__ == "Protocols" and snap.protocols.imap_enabled is not None
    assert any("exfil@evil.example" in str(f["evidence"]) for f in findings)
