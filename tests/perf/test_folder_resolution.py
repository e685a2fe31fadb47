"""Folder resolution for rule targets with few requests (issue 8): one hidden-inclusive top-level list per mailbox,
targets (and their missing ancestors) fetched by id only when the list lacks them, and well-known-name lookups only
when a target could be a localised default folder — with the same detections as before.

The requests are counted on the wire (a recording transport in front of the simulator), the folders and findings are
read from the stored scan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson

from scanner.store import Store
from scanner.sweep import run_scan
from tests.conftest import _create_app, make_sim_config


class Recording(httpx.AsyncBaseTransport):
    """Records every logical Graph request (``$batch`` sub-requests unpacked) on its way to the simulator."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.urls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/$batch"):
            body = orjson.loads(await request.aread())
            self.urls.extend(r["url"] for r in body.get("requests", []))
        elif "/v1.0/" in request.url.path:
            self.urls.append(request.url.path)
        return await self.inner.handle_async_request(request)


def _plain_mailbox(tenant: Any, skip: int = 0) -> Any:
    for u in tenant.iter_users():
        if u.has_mailbox and u.accountEnabled is not False and u.userType != "Guest" and \
                tenant.labels.get(u.userPrincipalName.lower(), {}).get("label", "plain") == "plain":
            if skip == 0:
                return u
            skip -= 1
    raise AssertionError("no plain mailbox")


async def test_rule_targets_resolve_without_well_known_lookups(tmp_path: Path) -> None:
    from scanner.simulator import generate_tenant

    tenant = generate_tenant(users=30, seed=5, scenarios=False)
    victim, other = _plain_mailbox(tenant), _plain_mailbox(tenant, 1)
    upn = victim.userPrincipalName
    targets = {
        "to archive": "Archive",                      # top-level, low visibility
        "to sync": "Sync Issues",                     # top-level, hidden, non-mail
        "to rss subs": "RSS Subscriptions",           # hidden, no v1.0 well-known name
        "to deep": "Inbox/Invoices/2024",             # 2 levels below the list: target and parent fetched by id
        "to archive child": "Archive/Old",            # child of a low-visibility folder
    }
    for name, path in targets.items():
        tenant.add_rule(victim, displayName=name, conditions={"subjectContains": ["invoice"]},
                        actions={"moveToFolder": path, "markAsRead": True})
    tenant.add_rule(other, displayName="projects", conditions={"subjectContains": ["project"]},
                    actions={"moveToFolder": "Inbox/Projects"})

    app = _create_app(tenant)
    env = make_sim_config(tmp_path, tenant, app)
    rec = Recording(env.transport)
    result = await run_scan(env.cfg, credential=env.credential, transport=rec)

    # No mailbox of this English tenant needed a well-known-name lookup: the list names the default folders.
    assert not [u for u in rec.urls if u.rsplit("/", 1)[-1].split("?")[0] in ("archive", "deleteditems",
                                                                              "junkemail", "inbox")]
    mine = [u for u in rec.urls if victim.id in u and "/mailFolders/" in u and "messageRules" not in u
            and "sentitems" not in u]
    # the list + "2024" + its parent "Invoices" + "Old": nothing else
    assert len([u for u in mine if "includeHiddenFolders" not in u]) == 3, mine

    with Store(env.cfg.database_path) as store:
        snap = store.get_account(result.scan_id, upn)
        findings = [f for f in store.findings(result.scan_id) if f["account"].lower() == upn.lower()]
        other_findings = [f for f in store.findings(result.scan_id)
                          if f["account"].lower() == other.userPrincipalName.lower()
                          and f["detector"] == "mail.inbox_rule_hidden_folder_move"]
    by_id = {f.id: f for f in snap.folders}
    assert by_id[tenant.well_known_folder(victim, "archive").id].well_known_name == "archive"
    assert by_id[tenant.well_known_folder(victim, "syncissues").id].well_known_name == "syncissues"
    deep = tenant.folder_by_name(victim, "Inbox/Invoices/2024")
    assert deep.id in by_id and by_id[deep.id].parent_folder_id in by_id  # ancestors known up to the Inbox

    moved = {f["evidence"].get("rule_name") or f["evidence"].get("rule"): f for f in findings
             if f["detector"] == "mail.inbox_rule_hidden_folder_move"}
    flagged = {k for k in moved}
    for name in ("to archive", "to sync", "to rss subs", "to archive child"):
        assert any(name in str(k) for k in flagged), (name, flagged)
    assert not any("to deep" in str(k) for k in flagged), "a custom folder under the Inbox is not low-visibility"
    assert next(f for k, f in moved.items() if "to sync" in str(k))["severity"] == "high"  # non-mail target
    assert other_findings == []


async def test_localised_mailbox_resolves_default_folders_by_well_known_lookup(tmp_path: Path) -> None:
    from scanner.simulator import generate_tenant

    tenant = generate_tenant(users=20, seed=6, scenarios=False)
    victim = _plain_mailbox(tenant)
    german = {"Inbox": "Posteingang", "Sent Items": "Gesendete Elemente", "Deleted Items": "Gelöschte Elemente",
              "Drafts": "Entwürfe", "Conversation History": "Verlauf der Unterhaltung"}
    for f in tenant.folders(victim).values():
        f.displayName = german.get(f.displayName, f.displayName)
    conv = tenant.well_known_folder(victim, "conversationhistory")
    tenant.add_rule(victim, displayName="hide", conditions={"subjectContains": ["payment"]},
                    actions={"moveToFolder": conv.id, "markAsRead": True})

    app = _create_app(tenant)
    env = make_sim_config(tmp_path, tenant, app)
    rec = Recording(env.transport)
    result = await run_scan(env.cfg, credential=env.credential, transport=rec)

    lookups = [u for u in rec.urls if victim.id in u and u.endswith("?$select=id")]
    assert any("/mailFolders/conversationhistory?" in u for u in lookups)
    assert not any("/mailFolders/archive?" in u for u in lookups), "Archive kept its English name: derived"
    with Store(env.cfg.database_path) as store:
        snap = store.get_account(result.scan_id, victim.userPrincipalName)
        findings = [f for f in store.findings(result.scan_id)
                    if f["account"].lower() == victim.userPrincipalName.lower()
                    and f["detector"] == "mail.inbox_rule_hidden_folder_move"]
    assert {f.id: f for f in snap.folders}[conv.id].well_known_name == "conversationhistory"
    assert findings and findings[0]["evidence"].get("folder_well_known") == "conversationhistory"
