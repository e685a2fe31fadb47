"""Role collection through the real SDK pipeline: ``$expand=principal`` (users, groups, service principals), group
members, TenantInfo.privileged_principals.

Service-principal and group principals (nested groups and an unreadable group included) are exercised against a small
fake Graph tenant below that answers with Microsoft's documented shapes (graph-api.md §5.1; List unifiedRoleAssignments
example with ``$expand=principal``). It expands a principal only when asked, so the assertions also prove the collector
asks. The simulator tests cover users, service principals and role-assignable groups end to end (the group path in
test_collectors_role_groups.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from scanner.collectors.roles import principal_info, privileged_principals, read_roles
from scanner.config import parse_config
from scanner.graph.factory import StaticTokenCredential, connect
from scanner.store import Store
from scanner.sweep import run_scan
from tests.conftest import SIM_EXCHANGE_URL, SIM_GRAPH_URL

GA = "62e90394-69f5-4237-9190-012177145e10"
SEC = "194ae4cb-b126-40b2-bd5b-6091b380977d"  # Security Administrator (privileged)
READER = "4a5d8f65-41da-4de4-8968-e035b65339cf"  # Reports Reader: not privileged
TENANT_ID = "0f0e0d0c-0000-4000-8000-00000000c0de"
ALICE = "ace08ec9-aa11-4ada-9145-addf0398233e"
BOB = "b0b0b0b0-aa11-4ada-9145-addf03982301"
CAROL = "ca401ca4-aa11-4ada-9145-addf03982302"
SP_ID = "5e0c1a2b-3333-4c4c-9d9d-00000000aaaa"
MS_SP_ID = "5e0c1a2b-3333-4c4c-9d9d-00000000bbbb"
GROUP = "9a9a9a9a-1111-4b4b-8c8c-000000000001"
NESTED = "9a9a9a9a-1111-4b4b-8c8c-000000000002"
LOCKED_GROUP = "9a9a9a9a-1111-4b4b-8c8c-000000000003"

PRINCIPALS: dict[str, dict[str, Any]] = {
    ALICE: {"@odata.type": "#microsoft.graph.user", "id": ALICE, "displayName": "Alice", "userType": "Member"},
    SP_ID: {"@odata.type": "#microsoft.graph.servicePrincipal", "id": SP_ID, "displayName": "Mail Backup Sync",
            "appId": "a1b2c3d4-0000-4000-8000-00000000beef", "servicePrincipalType": "Application",
            "appOwnerOrganizationId": "9f3e0d1c-1111-4a4a-8b8b-2d7cd0aa0001"},
    MS_SP_ID: {"@odata.type": "#microsoft.graph.servicePrincipal", "id": MS_SP_ID, "displayName": "Microsoft Graph",
               "appId": "00000003-0000-0000-c000-000000000000", "servicePrincipalType": "Application",
               "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a"},
    GROUP: {"@odata.type": "#microsoft.graph.group", "id": GROUP, "displayName": "Tier0 Admins",
            "isAssignableToRole": True},
    NESTED: {"@odata.type": "#microsoft.graph.group", "id": NESTED, "displayName": "Exchange Ops",
             "isAssignableToRole": True},
    LOCKED_GROUP: {"@odata.type": "#microsoft.graph.group", "id": LOCKED_GROUP, "displayName": "Locked",
                   "isAssignableToRole": True},
}
ASSIGNMENTS = [  # (id, principalId, roleDefinitionId, directoryScopeId)
    ("a1", ALICE, GA, "/"), ("a2", SP_ID, GA, "/"), ("a3", MS_SP_ID, SEC, "/"), ("a4", GROUP, GA, "/"),
    ("a5", NESTED, SEC, "/"), ("a6", LOCKED_GROUP, SEC, "/"), ("a7", SP_ID, READER, "/"),
]
MEMBERS = {GROUP: [BOB, CAROL], NESTED: [CAROL]}  # transitive: Carol is in Exchange Ops and (nested) in Tier0


def _answer(path: str, query: dict[str, list[str]], requests: list[str]) -> tuple[int, dict[str, Any]]:
    requests.append(path + "?" + "&".join(f"{k}={v[0]}" for k, v in sorted(query.items())))
    segs = [s for s in path.split("/") if s and s != "v1.0"]
    expand = "principal" in (query.get("$expand") or [""])[0]
    if segs == ["roleManagement", "directory", "roleDefinitions"]:
        names = {GA: "Global Administrator", SEC: "Security Administrator", READER: "Reports Reader"}
        return 200, {"value": [{"id": i, "displayName": n, "templateId": i, "isBuiltIn": True}
                               for i, n in names.items()]}
    if segs == ["roleManagement", "directory", "roleAssignments"]:
        flt = (query.get("$filter") or [""])[0]
        if "roleDefinitionId eq" not in flt:
            return 400, {"error": {"code": "Request_UnsupportedQuery", "message": "filter required"}}
        rid = flt.split("'")[1]
        out = []
        for aid, pid, rd, scope in ASSIGNMENTS:
            if rd == rid:
                a: dict[str, Any] = {"id": aid, "principalId": pid, "roleDefinitionId": rd, "directoryScopeId": scope,
                                     "resourceScope": scope}
                if expand:
                    a["principal"] = PRINCIPALS[pid]
                out.append(a)
        return 200, {"value": out}
    if segs == ["roleManagement", "directory", "roleEligibilitySchedules"]:
        return 200, {"value": []}
    if len(segs) == 4 and segs[0] == "groups" and segs[2:] == ["transitiveMembers", "microsoft.graph.user"]:
        if segs[1] == LOCKED_GROUP:
            return 403, {"error": {"code": "Authorization_RequestDenied",
                                   "message": "Insufficient privileges to complete the operation."}}
        return 200, {"value": [{"@odata.type": "#microsoft.graph.user", "id": u} for u in MEMBERS[segs[1]]]}
    return 404, {"error": {"code": "Request_ResourceNotFound", "message": path}}


def fake_graph(requests: list[str]) -> Starlette:
    async def single(request: Request) -> JSONResponse:
        status, body = _answer(request.url.path, parse_qs(request.url.query), requests)
        return JSONResponse(body, status_code=status)

    async def batch(request: Request) -> JSONResponse:
        body = await request.json()
        out = []
        for r in body["requests"]:
            u = urlsplit(r["url"])
            status, rbody = _answer(unquote(u.path), parse_qs(u.query), requests)
            out.append({"id": r["id"], "status": status, "headers": {"Content-Type": "application/json"},
                        "body": rbody})
        return JSONResponse({"responses": out})

    return Starlette(routes=[Route("/v1.0/$batch", batch, methods=["POST"]),
                             Route("/v1.0/{path:path}", single, methods=["GET"])])


async def _read_from_fake(tmp_path: Path) -> tuple[dict[str, list[dict[str, Any]]], list[str], list[str]]:
    cfg = parse_config({"tenant": {"tenant_id": TENANT_ID}, "auth": {"method": "access_token"},
                        "endpoints": {"graph": SIM_GRAPH_URL, "exchange": SIM_EXCHANGE_URL},
                        "storage": {"database": str(tmp_path / "db.sqlite")}}, tmp_path / "m365sweep.toml")
    requests: list[str] = []
    conn = connect(cfg, credential=StaticTokenCredential(graph="g", exchange="x"),
                   transport=httpx.ASGITransport(app=fake_graph(requests)))
    try:
        by_principal, notes = await read_roles(conn.graph)
    finally:
        await conn.aclose()
    return by_principal, notes, requests


async def test_principals_are_expanded_and_service_principals_kept_with_app_identity(tmp_path: Path) -> None:
    by_principal, _notes, requests = await _read_from_fake(tmp_path)
    assert all("$expand=principal" in r for r in requests if "roleAssignments" in r or "Eligibility" in r)
    (sp_ga,) = [r for r in by_principal[SP_ID] if r["role_template_id"] == GA]
    assert sp_ga["principal_type"] == "servicePrincipal" and sp_ga["privileged"]
    assert sp_ga["app_id"] == "a1b2c3d4-0000-4000-8000-00000000beef"
    assert sp_ga["app_owner_organization_id"] == "9f3e0d1c-1111-4a4a-8b8b-2d7cd0aa0001"
    assert sp_ga["service_principal_type"] == "Application"
    assert [r["principal_type"] for r in by_principal[ALICE]] == ["user"]
    pp = {(p["id"], p["role_template_id"]): p for p in privileged_principals(by_principal)}
    # Non-user principals in privileged roles only: the SP's GA, Microsoft's SP's Security admin, the groups' roles.
    assert set(pp) == {(SP_ID, GA), (MS_SP_ID, SEC), (GROUP, GA), (NESTED, SEC), (LOCKED_GROUP, SEC)}
    assert pp[(SP_ID, GA)]["display_name"] == "Mail Backup Sync" and pp[(GROUP, GA)]["principal_type"] == "group"


async def test_group_roles_reach_transitive_members_and_unreadable_groups_are_noted(tmp_path: Path) -> None:
    by_principal, notes, _ = await _read_from_fake(tmp_path)
    bob = by_principal[BOB]
    assert [(r["role_template_id"], r["via_group"], r["group_id"]) for r in bob] == [(GA, True, GROUP)]
    carol = {(r["role_template_id"], r["group_id"]) for r in by_principal[CAROL]}
    assert carol == {(GA, GROUP), (SEC, NESTED)}
    assert all(r["principal_type"] == "user" and r["privileged"] for r in by_principal[CAROL])
    assert len({r["id"] for r in bob + by_principal[CAROL]}) == 3  # member rows have their own ids
    # The group whose members cannot be read: kept as a group row, and the scan says so.
    assert [r["principal_type"] for r in by_principal[LOCKED_GROUP]] == ["group"]
    assert len(notes) == 1 and LOCKED_GROUP in notes[0] and "not marked" in notes[0]


def test_principal_info_documented_shapes() -> None:
    assert principal_info({"principal": None}) == {"principal_type": None}
    assert principal_info({})["principal_type"] is None
    sp = principal_info({"principal": {"id": "x", "appId": "y", "displayName": "App"}})  # no @odata.type
    assert sp["principal_type"] == "servicePrincipal" and sp["app_id"] == "y"
    assert principal_info({"principal": PRINCIPALS[GROUP]})["principal_type"] == "group"


async def test_simulator_scan_stores_privileged_principals_and_user_roles(sim_env: Any) -> None:
    result = await run_scan(sim_env.cfg, **sim_env.kwargs)
    with Store(sim_env.cfg.database_path) as store:
        tenant = json.loads(store.scan(result.scan_id)["tenant"])
        patti = store.get_account(result.scan_id, "patti.fernandez@contoso.com")
        rows = store.get_tenant_data(result.scan_id, "scan.tenant_sources")["data"]["roles"]
    # Collected (a list, not None = "unknown"): the simulator's planted tenant-level scenarios are the only non-user
    # role holders — a third-party app and a Microsoft first-party app (scenarios/tenant/service_principals.json) and
    # the role-assignable group holding Global Administrator (scenarios/tenant/groups.json).
    assert sorted((p["display_name"], p["role_name"], p["principal_type"]) for p in tenant["privileged_principals"]) \
        == [("Mail Sync Connector", "Privileged Role Administrator", "servicePrincipal"),
            ("Microsoft Defender for Cloud Apps", "Security Administrator", "servicePrincipal"),
            ("Tier 0 Administrators", "Global Administrator", "group")]
    assert {r["principal_type"] for rs in rows.values() for r in rs if r["kind"] == "active"} == \
        {"user", "servicePrincipal", "group"}
    assert any(r.role_name == "Global Administrator" and not r.via_group for r in patti.require("roles"))
    assert not [e for e in result.errors if e["collector"] in ("roles", "detectors:roles")]


async def test_roles_source_failing_leaves_privileged_principals_unknown(sim_env: Any) -> None:
    sim_env.tenant.faults.add("roleManagement/directory/roleDefinitions", kind="status", status=403, times=None,
                              code="Authorization_RequestDenied")
    result = await run_scan(sim_env.cfg, **sim_env.kwargs)
    with Store(sim_env.cfg.database_path) as store:
        tenant = json.loads(store.scan(result.scan_id)["tenant"])
    assert tenant["privileged_principals"] is None
    rows = [e for e in result.errors if e["collector"] == "detectors:roles"]
    assert len(rows) == 1 and rows[0]["upn"] is None and "roles.service_principal_privileged" in rows[0]["message"]
    assert result.exit_code == 3
