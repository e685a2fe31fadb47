"""Exchange role groups: the simulator's Get-RoleGroup / Get-RoleGroupMember / Add- / Remove-RoleGroupMember shapes
and errors, the collector's liberal parsing and member resolution, a scan that puts each member's memberships on its
snapshot (standing ones are no finding), refusals that are coverage gaps naming the cmdlet and the Exchange role
(exit 3, never "no members"), and stored scans from before this collection that still load."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from scanner.collectors.exchange import MailboxDirectory, _mailbox_row
from scanner.collectors.exchange_role_groups import (
    assignment_row,
    index_role_groups,
    member_row,
    memberships_for,
    role_group_row,
    role_groups_gap,
)
from scanner.collectors.tenant import TenantSources
from scanner.graph.client import ApiError
from scanner.simulator import create_app, generate_tenant, role_groups
from scanner.snapshot import AccountSnapshot, NotCollected, TenantInfo
from scanner.store import Store
from scanner.sweep import run_scan

EXO = "http://localhost:8765"
ORG = "Organization Management"


def _body(cmdlet: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"CmdletInput": {"CmdletName": cmdlet, "Parameters": params or {}}}


def _detail(r: httpx.Response) -> str:
    return r.json()["error"]["details"][0]["message"]


# ---- the simulator ----------------------------------------------------------------------------------------------------
async def test_simulator_role_group_cmdlets_shapes_and_errors() -> None:
    t = generate_tenant(users=30, seed=7, scenarios=True)
    app = create_app(t)
    url = f"{EXO}/adminapi/beta/{t.tenant_id}/InvokeCommand"
    nathan = t.user(f"nathan.yates@{t.primary_domain}")
    adele = f"adele.vance@{t.primary_domain}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as c:
        h = {"Authorization": f"Bearer {app.exchange_token}"}
        r = await c.post(url, headers=h, json=_body("Get-RoleGroup", {"ResultSize": "Unlimited"}))
        assert r.status_code == 200, r.text
        groups = {g["Name"]: g for g in r.json()["value"]}
        assert {ORG, "Recipient Management", "Discovery Management", "Compliance Management", "Security Administrator",
                "Hygiene Management", "View-Only Organization Management", "Help Desk"} <= set(groups)
        org = groups[ORG]
        assert org["Roles@odata.type"] == "#Collection(String)" and "Role Management" in org["Roles"]
        assert org["RoleGroupType"] == "Standard" and org["Identity"] == ORG and len(org["Guid"]) == 36
        assert nathan.mailNickname in org["Members"] and "TenantAdmins_-1457232487" in org["Members"]

        r = await c.post(url, headers=h, json=_body("Get-RoleGroupMember", {"Identity": org["Guid"],
                                                                             "ResultSize": "Unlimited"}))
        members = {m["Name"]: m for m in r.json()["value"]}
        me = members[nathan.mailNickname]
        assert me["RecipientType"] == "UserMailbox" and me["ExternalDirectoryObjectId"] == nathan.id
        assert me["WindowsLiveID"] == nathan.userPrincipalName and me["PrimarySmtpAddress"] == nathan.mail
        assert members["TenantAdmins_-1457232487"]["RecipientType"] == "Group"
        assert members["TenantAdmins_-1457232487"]["ExternalDirectoryObjectId"] is None

        # Errors as Exchange gives them: unknown group (404), a non-member removed, a member added twice, bad params.
        r = await c.post(url, headers=h, json=_body("Get-RoleGroupMember", {"Identity": "Nope"}))
        assert r.status_code == 404 and "ManagementObjectNotFoundException" in _detail(r)
        rm = {"Identity": ORG, "Member": adele, "BypassSecurityGroupManagerCheck": True, "Confirm": False}
        r = await c.post(url, headers=h, json=_body("Remove-RoleGroupMember", rm))
        assert r.status_code == 400 and "isn't a member of the group" in _detail(r), r.text
        assert (await c.post(url, headers=h, json=_body("Add-RoleGroupMember", rm))).status_code == 200
        assert adele in role_groups.members_of(t, ORG)
        r = await c.post(url, headers=h, json=_body("Add-RoleGroupMember", rm))
        assert r.status_code == 400 and "is already a member of the group" in _detail(r)
        assert (await c.post(url, headers=h, json=_body("Remove-RoleGroupMember", rm))).status_code == 200
        assert adele not in role_groups.members_of(t, ORG)
        r = await c.post(url, headers=h, json=_body("Get-RoleGroupMember", {"Identity": ORG, "Member": "x"}))
        assert r.status_code == 400 and "ParameterBindingException" in _detail(r)
        r = await c.post(url, headers=h, json=_body("Remove-RoleGroupMember", {"Identity": ORG}))
        assert r.status_code == 400 and "null or empty" in _detail(r)
    # The overnight scenario block is only in the tenant once applied.
    assert role_groups.apply_overnight(t) == ["exchange_role_group_added"]
    assert adele in role_groups.members_of(t, ORG)


# ---- the collector ------------------------------------------------------------------------------------------------------
def test_rows_read_exchange_shapes_liberally() -> None:
    g = role_group_row({"Name": "Custom exporters", "Guid": "g-1", "RoleGroupType": "Standard",
                        "Roles": "contoso.onmicrosoft.com\\Mailbox Import Export", "Members": None,
                        "WhenChanged": "/Date(1767225600000)/"})
    assert g is not None and g["roles"] == ["Mailbox Import Export"] and g["identity"] == "g-1"
    assert g["when_changed"].startswith("2026-01-01")
    g2 = role_group_row({"Identity": "Org Mgmt", "ExchangeObjectId": "e-1", "Roles": [
        "FFO.extest.microsoft.com/Microsoft Exchange Hosted Organizations/contoso.onmicrosoft.com/Role Management",
        {"Name": "Mail Recipients"}, None, "Role Management"]})
    assert g2 is not None and g2["name"] == "Org Mgmt" and g2["roles"] == ["Role Management", "Mail Recipients"]
    assert g2["guid"] == "e-1"
    assert role_group_row({"Roles": ["x"]}) is None
    assert member_row("Adele Vance") == {"name": "Adele Vance", "identity": "Adele Vance", "recipient_type": None,
                                         "id": None, "keys": ["Adele Vance"]}
    m = member_row({"Name": "adele", "RecipientType": "UserMailbox", "ExternalDirectoryObjectId": "ABC",
                    "PrimarySmtpAddress": "adele@contoso.com", "WindowsLiveID": "adele@contoso.com"})
    assert m is not None and m["id"] == "abc" and m["keys"][0] == "adele@contoso.com"
    assert member_row({"Name": None}) is None and member_row(None) is None


def test_members_resolve_through_the_directory_and_unresolved_ones_are_named() -> None:
    directory = MailboxDirectory.from_rows([_mailbox_row({
        "ExternalDirectoryObjectId": "id-bob", "UserPrincipalName": "bob@contoso.com", "Name": "bob",
        "Alias": "bob", "DisplayName": "Bob Kelly", "PrimarySmtpAddress": "bob@contoso.com"})])
    groups = [{"name": ORG, "identity": ORG, "guid": "g", "roles": ["Role Management"], "role_group_type": "Standard",
               "members": [
                   member_row({"Name": "Bob Kelly", "RecipientType": "UserMailbox"}),  # by display name, no id
                   member_row({"Name": "carol", "RecipientType": "User", "ExternalDirectoryObjectId": "ID-CAROL"}),
                   member_row({"Name": "dan", "RecipientType": "User", "WindowsLiveID": "dan@contoso.com"}),
                   member_row({"Name": "TenantAdmins_-1", "RecipientType": "Group"}),
                   member_row("S-1-5-21-1-2-3"),
               ]}]
    by_key, unresolved = index_role_groups(groups, directory)
    (bob,) = memberships_for(by_key, "id-bob", "bob@contoso.com")
    assert bob.group == ORG and bob.roles == ("Role Management",) and bob.member == "Bob Kelly"
    assert [m.group for m in memberships_for(by_key, "id-carol", "carol@contoso.com")] == [ORG]
    assert [m.group for m in memberships_for(by_key, "id-dan", "DAN@contoso.com")] == [ORG]  # no mailbox, by UPN
    assert memberships_for(by_key, "id-eve", "eve@contoso.com") == ()
    assert unresolved == {ORG: ["TenantAdmins_-1 (Group: no Entra object id: members not expanded)",
                                "S-1-5-21-1-2-3"]}


@pytest.mark.parametrize("err", [ApiError("denied", status=403, service="exchange"),
                                 ApiError("The term 'Get-RoleGroup' is not recognized as a name of a cmdlet",
                                          status=400, service="exchange")])
def test_refusal_names_the_cmdlet_and_the_exchange_role(err: ApiError) -> None:
    why = role_groups_gap("Get-RoleGroup", err)
    assert "access denied to Get-RoleGroup" in why.reason and "View-Only Configuration" in why.reason
    assert why.permission and "Exchange.ManageAsApp" in why.permission
    other = role_groups_gap("Get-RoleGroupMember", ApiError("boom", status=500, service="exchange"))
    assert other.reason.startswith("Get-RoleGroupMember failed") and other.permission is None


def test_members_of_an_expanded_group_hold_the_role_group_through_it_and_direct_membership_wins() -> None:
    ops = member_row({"Name": "exops", "RecipientType": "MailUniversalSecurityGroup",
                      "ExternalDirectoryObjectId": "GID-OPS"})
    assert ops is not None
    ops["expanded"] = ["id-bob", "id-carol"]
    carol = member_row({"Name": "carol", "RecipientType": "User", "ExternalDirectoryObjectId": "id-carol"})
    broken = member_row({"Name": "helpers", "RecipientType": "MailUniversalSecurityGroup",
                         "ExternalDirectoryObjectId": "gid-h"})
    assert broken is not None
    broken["expand_error"] = "members not read: denied; the app needs GroupMember.Read.All"
    groups = [{"name": ORG, "identity": ORG, "guid": "g", "roles": ["Role Management"], "members": [ops, carol, broken]},
              {"name": "Discovery Management", "identity": "dm", "guid": "d", "roles": [], "members": [ops]}]
    by_key, unresolved = index_role_groups(groups, None)
    bob = memberships_for(by_key, "ID-BOB", "bob@contoso.com")
    assert [(m.group, m.via_group) for m in bob] == [("Discovery Management", "exops"), (ORG, "exops")]
    # carol is in Organization Management herself and through the group: the direct membership is the one kept
    assert [(m.group, m.via_group) for m in memberships_for(by_key, "id-carol", "carol@contoso.com")] == [
        ("Discovery Management", "exops"), (ORG, None)]
    assert unresolved == {ORG: ["helpers (MailUniversalSecurityGroup: members not read: denied; the app needs "
                                "GroupMember.Read.All)"]}


# ---- end to end ----------------------------------------------------------------------------------------------------------
async def test_scan_puts_memberships_on_snapshots_and_standing_ones_are_not_findings(make_sim_env: Any) -> None:
    env = make_sim_env(users=40, seed=7, scenarios=True)
    t = env.tenant
    r = await run_scan(env.cfg, **env.kwargs)
    assert not [e for e in r.errors if "exchange_role_groups" in e["collector"]], r.errors
    with Store(env.cfg.database_path) as store:
        nathan = store.get_account(r.scan_id, f"nathan.yates@{t.primary_domain}")
        adam = store.get_account(r.scan_id, f"adam.baxter@{t.primary_domain}")
        other = store.get_account(r.scan_id, f"adele.vance@{t.primary_domain}")
        assert nathan is not None and adam is not None and other is not None
        (org,) = nathan.require("exchange_role_groups")
        assert org.group == ORG and "Role Management" in org.roles and org.group_identity
        assert [m.group for m in adam.require("exchange_role_groups")] == ["Discovery Management",
                                                                            "Recipient Management"]
        assert other.require("exchange_role_groups") == ()
        assert not [f for f in store.findings(r.scan_id) if f["detector"] == "roles.exchange_role_group_new"]
        tenant = TenantInfo.model_validate_json(store.scan(r.scan_id)["tenant"])
    rg = {g.name: g for g in tenant.exchange_role_groups or ()}
    assert "TenantAdmins_-1457232487 (RoleGroup: no Entra object id: members not expanded)" in \
        rg[ORG].unresolved_members
    assert rg[ORG].roles and t.user(f"nathan.yates@{t.primary_domain}").mailNickname in rg[ORG].members


@pytest.mark.parametrize("cmdlet", ["Get-RoleGroup", "Get-RoleGroupMember"])
async def test_refused_cmdlet_is_a_gap_naming_it_never_no_members(make_sim_env: Any, cmdlet: str) -> None:
    env = make_sim_env(users=30, seed=7, scenarios=True, app_options={"exchange_rbac_denied": frozenset({cmdlet})})
    r = await run_scan(env.cfg, **env.kwargs)
    tenant_gaps = [e for e in r.errors if e["collector"] == "exchange_role_groups" and e["upn"] is None]
    assert len(tenant_gaps) == 1, r.errors
    assert f"access denied to {cmdlet}" in tenant_gaps[0]["message"]
    assert "View-Only Configuration" in tenant_gaps[0]["message"]
    assert any(e["collector"] == "detectors:exchange_role_groups" for e in r.errors), r.errors
    with Store(env.cfg.database_path) as store:
        snap = store.get_account(r.scan_id, f"nathan.yates@{env.tenant.primary_domain}")
        assert snap is not None and snap.status("exchange_role_groups") == "not_collected"
    assert r.exit_code == 3


async def test_a_failing_read_is_a_gap_too(make_sim_env: Any) -> None:
    env = make_sim_env(users=30, seed=7, scenarios=True)
    env.tenant.faults.add("Get-RoleGroupMember", status=403, times=None)
    r = await run_scan(env.cfg, **env.kwargs)
    gaps = [e for e in r.errors if e["collector"] == "exchange_role_groups" and e["upn"] is None]
    assert len(gaps) == 1 and "Get-RoleGroupMember" in gaps[0]["message"] and r.exit_code == 3


def test_scans_stored_before_this_collection_still_load() -> None:
    old = AccountSnapshot.from_json('{"user": {"id": "u1", "user_principal_name": "a@contoso.com"}, "roles": []}')
    assert old.exchange_role_groups is None and old.status("exchange_role_groups") == "absent"
    assert "exchange_role_groups" not in old.gaps()
    assert TenantInfo.model_validate({"tenant_id": "t"}).exchange_role_groups is None
    src = TenantSources.from_json({"data": {"domains": {"domains": ["contoso.com"]}}, "gaps": {}})
    assert src.role_group_memberships("u1", "a@contoso.com") is None and src.exchange_role_groups() is None
    src = TenantSources.from_json({"data": {}, "gaps": {"exchange_role_groups": NotCollected(
        reason="access denied to Get-RoleGroup").model_dump()}})
    why = src.role_group_memberships("u1", "a@contoso.com")
    assert isinstance(why, NotCollected) and "Get-RoleGroup" in why.reason


async def test_a_mailbox_added_to_a_group_inside_a_role_group_is_a_new_membership_through_it(make_sim_env: Any) -> None:
    env = make_sim_env(users=40, seed=7, scenarios=True)
    t = env.tenant
    ops = t.add_group("Exchange Operators", mail=True)
    inner = t.add_group("Exchange Operators Tier 2", mail=True)
    t.add_group_member(ops, inner)  # nested once more: transitive members count
    t.add_group_member(inner, t.user(f"adele.vance@{t.primary_domain}"))
    role_groups.add_member(t, ORG, "Exchange Operators")
    first = await run_scan(env.cfg, **env.kwargs)
    assert not [e for e in first.errors if "exchange_role_groups" in e["collector"]], first.errors

    victim = f"megan.bowen@{t.primary_domain}"
    t.add_group_member(ops, t.user(victim))  # overnight: the attacker puts the taken-over mailbox in the group
    second = await run_scan(env.cfg, **env.kwargs)
    with Store(env.cfg.database_path) as store:
        adele = store.get_account(second.scan_id, f"adele.vance@{t.primary_domain}")
        assert adele is not None
        assert [(m.group, m.via_group) for m in adele.require("exchange_role_groups")] == [(ORG, "ExchangeOperators")]
        new = [f for f in store.findings(second.scan_id) if f["detector"] == "roles.exchange_role_group_new"]
        tenant = TenantInfo.model_validate_json(store.scan(second.scan_id)["tenant"])
    assert [(f["account"], f["evidence"]["role_group"], f["evidence"]["via_group"]) for f in new] == [
        (victim, ORG, "ExchangeOperators")]
    assert "Remove-DistributionGroupMember" in new[0]["evidence"]["removal"]
    rg = {g.name: g for g in tenant.exchange_role_groups or ()}
    assert "ExchangeOperators" in rg[ORG].members
    assert not [u for u in rg[ORG].unresolved_members if u.startswith("ExchangeOperators")]


async def test_a_group_inside_a_role_group_whose_members_cannot_be_read_is_named(make_sim_env: Any) -> None:
    env = make_sim_env(users=40, seed=7, scenarios=True)
    t = env.tenant
    ops = t.add_group("Exchange Operators", mail=True)
    t.add_group_member(ops, t.user(f"adele.vance@{t.primary_domain}"))
    role_groups.add_member(t, ORG, "Exchange Operators")
    t.faults.add(f"/groups/{ops['id']}/transitiveMembers", status=403, times=None, code="Authorization_RequestDenied",
                 message="Insufficient privileges to complete the operation.")
    r = await run_scan(env.cfg, **env.kwargs)
    with Store(env.cfg.database_path) as store:
        tenant = TenantInfo.model_validate_json(store.scan(r.scan_id)["tenant"])
    (named,) = [u for u in {g.name: g for g in tenant.exchange_role_groups or ()}[ORG].unresolved_members
                if u.startswith("ExchangeOperators")]
    assert "GroupMember.Read.All" in named
    # a tenant-wide coverage gap naming the permission (exit 3), never a silent "no members"
    (gap,) = [e for e in r.errors if e["collector"] == "exchange_role_groups" and e["upn"] is None]
    assert "ExchangeOperators" in gap["message"] and gap["permission"] == "GroupMember.Read.All"
    assert r.exit_code == 3


def test_direct_assignment_rows_are_read_liberally_and_only_enabled_user_ones_kept() -> None:
    a = assignment_row({"Name": "Mailbox Import Export-adele", "Role": "Mailbox Import Export",
                        "RoleAssigneeType": "User", "RoleAssigneeName": "adele", "User": "adele",
                        "EffectiveUserName": "adele", "Enabled": True, "Guid": "g1"})
    assert a is not None and a["role_group_type"] == "DirectAssignment" and a["roles"] == ["Mailbox Import Export"]
    assert a["members"][0]["keys"] == ["adele"]
    # a role printed as a path, Enabled as text
    b = assignment_row({"Identity": "x", "Role": "contoso.onmicrosoft.com\\Mailbox Search", "RoleAssigneeName": "bob",
                        "Enabled": "True"})
    assert b is not None and b["name"] == "x" and b["roles"] == ["Mailbox Search"]
    assert assignment_row({"Name": "n", "Role": "Mailbox Search", "RoleAssigneeName": "bob", "Enabled": False}) is None
    assert assignment_row({"Name": "n", "Role": "Role Management", "RoleAssigneeType": "RoleGroup",
                           "RoleAssigneeName": ORG}) is None
    assert assignment_row({"Name": "n", "Role": "Role Management", "RoleAssigneeType": "User"}) is None


async def test_a_refused_assignment_read_is_a_gap_naming_it_and_role_groups_are_kept(make_sim_env: Any) -> None:
    env = make_sim_env(users=40, seed=7, scenarios=True,
                       app_options={"exchange_rbac_denied": frozenset({"Get-ManagementRoleAssignment"})})
    r = await run_scan(env.cfg, **env.kwargs)
    (gap,) = [e for e in r.errors if e["collector"] == "exchange_role_groups" and e["upn"] is None]
    assert "access denied to Get-ManagementRoleAssignment" in gap["message"]
    assert "View-Only Configuration" in gap["message"] and "assigned directly" in gap["message"]
    assert r.exit_code == 3
    with Store(env.cfg.database_path) as store:
        nathan = store.get_account(r.scan_id, f"nathan.yates@{env.tenant.primary_domain}")
        assert nathan is not None and [m.group for m in nathan.require("exchange_role_groups")] == [ORG]
