"""Application permissions to every mailbox (detections.md §E2, second half), end to end: the simulator's
``appRoleAssignedTo`` endpoint, the tenant-wide collector through the real client, scans that find the planted app
and not the benign ones (the scanning app itself, Microsoft's own service, a verified backup product at Medium), a
403 that is a coverage gap naming Application.Read.All, allow-list suppression and the report's escaping of the
attacker-chosen app name."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx

from scanner.collectors.app_roles import read_app_roles
from scanner.graph.factory import connect
from scanner.simulator import create_app, generate_tenant
from scanner.simulator.app import SimOptions
from scanner.simulator.permissions import ALL_PERMISSIONS
from scanner.simulator.tokens import SIM_APP_ID
from scanner.store import Store
from scanner.sweep import run_scan

DET = "oauth.app_permission_mail_access"
GRAPH = "00000003-0000-0000-c000-000000000000"
EXO = "00000002-0000-0ff1-ce00-000000000000"
BASE = "http://127.0.0.1:8765/v1.0"


def _mine(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["account"]: f for f in rows if f["detector"] == DET}


def _findings(env: Any, scan_id: str) -> list[dict[str, Any]]:
    with Store(env.cfg.database_path) as store:
        return store.findings(scan_id)


async def test_simulator_app_role_assigned_to_shape() -> None:
    t = generate_tenant(users=30, seed=7, scenarios=True)
    app = create_app(t, SimOptions(throttle=False))
    graph_sp = t.service_principals[t.sp_by_name["Microsoft Graph"]]
    on_graph = [a for a in t.app_role_assignments.values() if a["resourceId"] == graph_sp["id"]]
    assert len(on_graph) > 8  # enough to page over
    no_app_read = sorted(p for p in ALL_PERMISSIONS if p not in (
        "Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"))
    weak = app.issue_token("https://graph.microsoft.com", roles=set(no_app_read))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as c:
        h = {"Authorization": f"Bearer {app.graph_token}"}
        # Paging: $top=4 gives nextLinks that are followed verbatim until every assignment was seen once.
        url: str | None = f"{BASE}/servicePrincipals/{graph_sp['id']}/appRoleAssignedTo?$top=4"
        seen: list[dict[str, Any]] = []
        while url:
            r = await c.get(url, headers=h)
            assert r.status_code == 200, r.text
            body = r.json()
            assert len(body["value"]) <= 4 and body["@odata.context"].endswith("/appRoleAssignedTo")
            seen.extend(body["value"])
            url = body.get("@odata.nextLink")
        assert sorted(a["id"] for a in seen) == sorted(a["id"] for a in on_graph)
        a = seen[0]
        assert set(a) == {"id", "deletedDateTime", "appRoleId", "createdDateTime", "principalDisplayName",
                          "principalId", "principalType", "resourceDisplayName", "resourceId"}
        assert a["resourceId"] == graph_sp["id"] and a["principalType"] == "ServicePrincipal"
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", a["id"])  # Graph's base64url assignment ids

        # The alternate key (appId='…') answers the same list; $select trims the objects (id always kept).
        r = await c.get(f"{BASE}/servicePrincipals(appId='{EXO}')/appRoleAssignedTo?$select=appRoleId", headers=h)
        assert r.status_code == 200 and r.json()["value"]
        assert all(set(v) == {"id", "appRoleId"} for v in r.json()["value"])
        exo = (await c.get(f"{BASE}/servicePrincipals(appId='{EXO}')?$select=id,appRoles", headers=h)).json()
        names = {r["id"]: r["value"] for r in exo["appRoles"]}
        assert names["dc890d15-9560-4a4c-9b7f-a736ec74ec40"] == "full_access_as_app"
        assert names["dc50a0fb-09a3-484d-be87-e023b12c6440"] == "Exchange.ManageAsApp"
        assert all(r["allowedMemberTypes"] == ["Application"] for r in exo["appRoles"])

        # OData errors: an unknown property, an unknown service principal.
        r = await c.get(f"{BASE}/servicePrincipals/{graph_sp['id']}/appRoleAssignedTo?$select=nope", headers=h)
        assert r.status_code == 400 and r.json()["error"]["code"] == "Request_BadRequest"
        r = await c.get(f"{BASE}/servicePrincipals/8f1b0c3e-0000-4000-8000-000000000000/appRoleAssignedTo",
                        headers=h)
        assert r.status_code == 404 and r.json()["error"]["code"] == "Request_ResourceNotFound"
        r = await c.get(f"{BASE}/servicePrincipals/{graph_sp['id']}/appRoleAssignedTo",
                        headers={"Authorization": f"Bearer {weak}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "Authorization_RequestDenied"


async def test_collector_reads_names_publishers_and_paged_assignments(make_sim_env: Any) -> None:
    env = make_sim_env(users=30, seed=7, scenarios=True)
    async with connect(env.cfg, credential=env.credential, transport=env.transport) as conn:
        rows, notes = await read_app_roles(conn.graph)
    assert notes == []
    assert len(rows) == len(env.tenant.app_role_assignments)  # both resources, every page
    by_app: dict[str, set[str]] = {}
    for r in rows:
        by_app.setdefault(r["app_display_name"], set()).add(f"{r['resource_app_id']}/{r['app_role']}")
    assert by_app["Secure Mail Gateway Sync"] == {f"{GRAPH}/Mail.ReadWrite", f"{EXO}/full_access_as_app"}
    assert f"{EXO}/Exchange.ManageAsApp" in by_app["m365sweep"]
    veeam = next(r for r in rows if r["app_display_name"] == "Veeam Backup for Microsoft 365")
    assert veeam["verified_publisher"] == "Veeam Software Group GmbH" and veeam["created_date_time"]
    me = next(r for r in rows if r["app_display_name"] == "m365sweep")
    assert me["app_id"] == SIM_APP_ID


async def test_scan_finds_the_planted_app_and_not_the_benign_ones(make_sim_env: Any, tmp_path: Any) -> None:
    env = make_sim_env(users=60, seed=7, scenarios=True)
    t = env.tenant
    r1 = await run_scan(env.cfg, **env.kwargs, out_dir=tmp_path / "out1")
    found = _mine(_findings(env, r1.scan_id))
    labels = {k: v for k, v in t.tenant_labels.items() if v.get("detector") == DET}
    assert {v["label"] for v in labels.values()} >= {"compromised", "benign_lookalike", "benign"}
    for subject, lab in labels.items():
        want = lab.get("expected_severity") or ("high" if lab["label"] == "compromised" else None)
        got = found.get(subject)
        assert (got["severity"] if got else None) == want, (subject, lab["scenario"], got)
    bad = found[next(k for k, v in labels.items() if v["label"] == "compromised")]
    ev = bad["evidence"]
    assert ev["mail_roles"] == ["Mail.ReadWrite", "full_access_as_app"] and ev["verified_publisher"] is None
    assert {r["resource"] for r in ev["roles"]} == {"Microsoft Graph", "Office 365 Exchange Online"}
    assert all(r["assignment_id"] in t.app_role_assignments for r in ev["roles"])
    assert all(f"appRoleAssignedTo/{r['assignment_id']}" in ev["what_to_do"] for r in ev["roles"])
    assert bad["new_since_last_scan"] is False  # a first scan: standing
    # The scanning app itself (token appid) holds Mail.ReadBasic.All + Exchange.ManageAsApp: never flagged.
    assert not [k for k in found if SIM_APP_ID in k]
    # A tenant-level fact: no account row, no verdict, in findings.json's findings.
    with Store(env.cfg.database_path) as store:
        assert bad["account"].lower() not in {a["upn"].lower() for a in store.accounts(r1.scan_id)}
    data = json.loads((tmp_path / "out1" / "findings.json").read_text("utf-8"))
    assert bad["account"] in {f["account"] for f in data["findings"] if f["detector"] == DET}

    # Overnight the unverified 'Mail Sync Pro' is given Mail.Send while a consent-capable admin (miriam.graham,
    # Cloud Application Administrator) shows a fresh authenticator: Critical, T1098.003, her named as a candidate.
    t.add_app_role_assignment("Mail Sync Pro", "Microsoft Graph", "Mail.Send")
    r2 = await run_scan(env.cfg, **env.kwargs)
    found2 = _mine(_findings(env, r2.scan_id))
    (new,) = [f for f in found2.values() if f["evidence"]["app"] == "Mail Sync Pro"]
    assert new["severity"] == "critical" and new["new_since_last_scan"] is True
    assert "T1098.003" in new["evidence"]["techniques"] and new["evidence"]["granting_admin"] is None
    assert "miriam.graham@contoso.com" in new["evidence"]["candidate_granting_admins"]
    assert found2[bad["account"]]["new_since_last_scan"] is False and found2[bad["account"]]["severity"] == "high"


async def test_missing_application_read_all_is_a_gap_never_clean(make_sim_env: Any) -> None:
    roles = sorted(p for p in ALL_PERMISSIONS if p not in (
        "Exchange.ManageAsApp", "Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All",
        "Directory.ReadWrite.All"))
    env = make_sim_env(users=30, seed=7, scenarios=True, roles=roles)
    r = await run_scan(env.cfg, **env.kwargs)
    gaps = [e for e in r.errors if e["collector"] == "app_roles"]
    assert len(gaps) == 1 and "Application.Read.All" in gaps[0]["message"], r.errors
    assert any(e["collector"] == "detectors:app_roles" and DET in e["message"] for e in r.errors), r.errors
    assert _mine(_findings(env, r.scan_id)) == {}
    assert r.exit_code == 3  # coverage gaps: never a clean 0 with a source unread


async def test_allow_listed_app_is_shown_suppressed(make_sim_env: Any) -> None:
    t = generate_tenant(users=30, seed=7, scenarios=True)
    sp = t.service_principals[t.sp_by_name["Secure Mail Gateway Sync"]]
    env = make_sim_env(tenant=t, allowlist={"apps": [{"value": sp["appId"], "reason": "mail gateway, CHG-881"}]})
    r = await run_scan(env.cfg, **env.kwargs)
    f = next(f for f in _mine(_findings(env, r.scan_id)).values() if f["evidence"]["app"] == sp["displayName"])
    assert f["severity"] == "info" and "CHG-881" in f["suppressed"]


async def test_report_escapes_the_attacker_chosen_app_name(make_sim_env: Any, tmp_path: Any) -> None:
    t = generate_tenant(users=30, seed=7, scenarios=True)
    evil = 'Mail <img src=x onerror="alert(1)"> Sync'
    sp = t.service_principals[t.sp_by_name["Secure Mail Gateway Sync"]]
    sp["displayName"] = sp["appDisplayName"] = evil  # the attacker names their app
    env = make_sim_env(tenant=t)
    await run_scan(env.cfg, **env.kwargs, out_dir=tmp_path / "out")
    doc = (tmp_path / "out" / "report.html").read_text("utf-8")
    section = doc[doc.index('<section id="tenant">'):doc.index('<section id="coverage">')]
    assert "<img src=x" not in doc
    text = html.unescape(re.sub(r"<[^>]+>", "", section))
    assert evil in text and "full_access_as_app" in text and "Mail.ReadWrite" in text
    data = json.loads((tmp_path / "out" / "findings.json").read_text("utf-8"))
    assert any(f["detector"] == DET and f["evidence"]["app"] == evil for f in data["findings"])  # raw in JSON


async def test_tenant_without_exchange_online_reads_graph_assignments_only(make_sim_env: Any) -> None:
    t = generate_tenant(users=30, seed=7, scenarios=True)
    exo_id = t.sp_by_name["Office 365 Exchange Online"]
    del t.service_principals[exo_id]  # the Exchange Online API is not provisioned in this tenant
    for aid in [a for a, v in t.app_role_assignments.items() if v["resourceId"] == exo_id]:
        del t.app_role_assignments[aid]
    env = make_sim_env(tenant=t)
    async with connect(env.cfg, credential=env.credential, transport=env.transport) as conn:
        rows, _ = await read_app_roles(conn.graph)
    assert rows and {r["resource_app_id"] for r in rows} == {GRAPH}  # no error, nothing invented


def test_scanner_app_id_prefers_the_token_then_the_config() -> None:
    from scanner.collectors.app_roles import scanner_app_id

    assert scanner_app_id({"appid": "AAAA-1"}, "bbbb-2") == "aaaa-1"  # v1 token
    assert scanner_app_id({"azp": "cccc-3"}, None) == "cccc-3"  # v2 token
    assert scanner_app_id({}, "BBBB-2") == "bbbb-2"  # not a JWT: the configured client id
    assert scanner_app_id({}, None) is None
