"""remove_admin_roles and roles held through a role-assignable group, end to end through the simulator: the scan sees
the group's Global Administrator on the account (``via_group``), ``remediate --step remove_admin_roles --yes`` takes
the account out of the group (``DELETE /groups/{id}/members/{id}/$ref``), the journal has started / applied /
verified, and ``undo`` adds it back. A nested membership is named in a note and left alone; a group the app may not
read is a note naming the permission."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from remhelpers import Scanned, plant_compromise, sim_tokens, user_mailboxes

from remediators.cli import ConnectOptions, remediate_command
from scanner.graph.factory import StaticTokenCredential
from scanner.simulator import create_app, generate_tenant
from scanner.simulator.permissions import ALL_PERMISSIONS

GA = "62e90394-69f5-4237-9190-012177145e10"
STEP = "remove_admin_roles"
GROUP = "Tier 0 Admins"


def _tenant() -> tuple[Any, str, str]:
    """A compromised account added to a role-assignable group holding Global Administrator, and a colleague who has
    been a member for years."""
    tenant = generate_tenant(users=40, seed=5, scenarios=False)
    upn, colleague = user_mailboxes(tenant, 2)
    plant_compromise(tenant, upn)
    g = tenant.add_group(GROUP, assignable=True)
    tenant.add_group_role(g, "Global Administrator")
    tenant.add_group_member(g, colleague)
    tenant.add_group_member(g, upn)
    return tenant, upn, colleague


@pytest.fixture
def scanned(tmp_path: Path) -> tuple[Scanned, str, str]:
    tenant, upn, colleague = _tenant()
    s = Scanned(tmp_path, tenant, create_app(tenant))
    assert s.verdict(upn) == "compromised"
    return s, upn, colleague


def _flat(output: str) -> str:
    """The CLI's result table with its borders and wrapping removed (notes wrap inside the detail column)."""
    return " ".join(output.replace("│", " ").split())


def _remediate_wide(s: Scanned, upn: str, opts: ConnectOptions | None = None) -> Any:
    """``remediate --step remove_admin_roles --yes`` on a wide terminal, so the plan's notes are printed whole."""
    return CliRunner().invoke(remediate_command, ["--config", str(s.config_path), "--user", upn, "--step", STEP,
                                                  "--yes"], obj=opts or s.options(), catch_exceptions=False,
                              env={"COLUMNS": "400"})


def _rows(s: Scanned, upn: str) -> list[dict[str, Any]]:
    return [r for r in s.journal(upn) if r["step"] == STEP]


def test_scan_sees_the_group_role_and_the_step_removes_the_membership_then_undo_restores_it(
        scanned: tuple[Scanned, str, str]) -> None:
    s, upn, colleague = scanned
    t = s.tenant
    u = t.user(upn)
    gid = t.group(GROUP)["id"]
    snap = s.store.get_account(s.scan_id, upn)
    assert [(r.role_template_id, r.via_group) for r in snap.require("roles")] == [(GA, True)]
    assert t.roles_of(u) == []  # no direct assignment: the role comes only through the group

    n = len(t.mutations)
    res = s.remediate("--user", upn, "--step", STEP, "--yes")
    assert res.exit_code == 0, res.output
    assert t.groups_of(u) == [] and t.groups_of(colleague) == [GROUP]
    assert [(m["method"], m["path"]) for m in t.mutations[n:]] == [
        ("DELETE", f"/groups/{gid}/members/{u.id}/$ref")]
    started = next(r for r in _rows(s, upn) if r["status"] == "started")
    assert started["target"] == f"group:{gid}"
    assert started["before"] == {"groupId": gid, "groupName": GROUP, "roles": ["Global Administrator"],
                                 "userId": u.id}
    assert started["after"]["label"] == f"member of role-assignable group '{GROUP}' (grants Global Administrator)"
    aid = started["action_id"]
    assert [r["status"] for r in _rows(s, upn) if r["action_id"] == aid] == ["started", "applied", "verified"]

    # Applying again: the live state has nothing left to remove.
    n = len(t.mutations)
    assert s.remediate("--user", upn, "--step", STEP, "--yes").exit_code == 0
    assert len(t.mutations) == n

    res = s.undo(aid)
    assert res.exit_code == 0, res.output
    assert "restored" in res.output and GROUP in res.output
    assert t.groups_of(u) == [GROUP]
    assert [(m["method"], m["path"]) for m in t.mutations[n:]] == [("POST", f"/groups/{gid}/members/$ref")]
    assert [r["status"] for r in _rows(s, upn) if r["action_id"] == aid] == [
        "started", "applied", "verified", "undo_started", "undone"]
    again = s.undo(aid)
    assert again.exit_code == 0 and "already undone" in again.output


def test_undo_when_the_membership_was_given_back_meanwhile(scanned: tuple[Scanned, str, str]) -> None:
    s, upn, _ = scanned
    t = s.tenant
    assert s.remediate("--user", upn, "--step", STEP, "--yes").exit_code == 0
    aid = next(r["action_id"] for r in _rows(s, upn) if r["status"] == "applied")
    t.add_group_member(GROUP, upn)  # an admin put it back by hand
    n = len(t.mutations)
    res = s.undo(aid)
    assert res.exit_code == 0 and "already a member" in res.output, res.output
    assert t.groups_of(upn) == [GROUP] and len(t.mutations) == n


def test_direct_role_and_group_membership_go_together(tmp_path: Path) -> None:
    tenant, upn, _ = _tenant()
    u = tenant.user(upn)
    tenant.add_role(u, "Exchange Administrator")
    s = Scanned(tmp_path, tenant, create_app(tenant))
    res = s.remediate("--user", upn, "--step", STEP, "--yes")
    assert res.exit_code == 0, res.output
    assert tenant.roles_of(u) == [] and tenant.groups_of(u) == []
    verified = {r["target"].split(":")[0] for r in _rows(s, upn) if r["status"] == "verified"}
    assert verified == {"group", next(r["target"] for r in _rows(s, upn)
                                      if r["status"] == "verified" and not r["target"].startswith("group:"))}


def test_ordinary_groups_and_groups_without_roles_are_left_alone(tmp_path: Path) -> None:
    tenant, upn, _ = _tenant()
    plain = tenant.add_group("Finance")
    spare = tenant.add_group("Spare admins (no role yet)", assignable=True)
    tenant.add_group_member(plain, upn)
    tenant.add_group_member(spare, upn)
    s = Scanned(tmp_path, tenant, create_app(tenant))
    assert s.remediate("--user", upn, "--step", STEP, "--yes").exit_code == 0
    assert sorted(tenant.groups_of(upn)) == ["Finance", "Spare admins (no role yet)"]


def test_nested_membership_is_a_note_and_nothing_changes(tmp_path: Path) -> None:
    tenant = generate_tenant(users=40, seed=5, scenarios=False)
    upn = user_mailboxes(tenant, 1)[0]
    plant_compromise(tenant, upn)
    top = tenant.add_group(GROUP, assignable=True)
    tenant.add_group_role(top, "Global Administrator")
    inner = tenant.add_group("Helpdesk leads")
    tenant.add_group_member(inner, upn)
    # Entra refuses a group inside a role-assignable group (groups-concept); the step must still cope if it sees one.
    tenant.add_group_member(top, inner, allow_nesting=True)
    s = Scanned(tmp_path, tenant, create_app(tenant))
    snap = s.store.get_account(s.scan_id, upn)
    assert [(r.role_template_id, r.via_group) for r in snap.require("roles")] == [(GA, True)]
    n = len(tenant.mutations)
    res = _remediate_wide(s, upn)
    assert res.exit_code == 0, res.output
    out = _flat(res.output)
    assert f"nested group membership '{GROUP}' > 'Helpdesk leads'" in out, res.output
    assert len(tenant.mutations) == n
    assert tenant.groups_of(upn) == ["Helpdesk leads"] and tenant.group_members[top["id"]] == [inner["id"]]
    assert not [r for r in _rows(s, upn) if r["status"] in ("started", "applied")]


GROUP_PERMISSIONS = {"GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All", "Group.ReadWrite.All",
                     "Directory.Read.All", "Directory.ReadWrite.All"}


def test_groups_the_app_may_not_read_are_a_note_naming_the_permission(scanned: tuple[Scanned, str, str]) -> None:
    s, upn, _ = scanned
    t = s.tenant
    t.add_role(t.user(upn), "Exchange Administrator")
    graph_tok, ex_tok = sim_tokens(t, roles=sorted(ALL_PERMISSIONS - GROUP_PERMISSIONS))
    opts = ConnectOptions(credential=StaticTokenCredential(graph=graph_tok, exchange=ex_tok),
                          transport=s.env.transport, verify_timeout=0.0, poll_interval=0.0)
    n = len(t.mutations)
    res = _remediate_wide(s, upn, opts)
    # The direct assignment goes as usual; the group is named as unread, not treated as "no group".
    assert res.exit_code == 0, res.output
    out = _flat(res.output)
    gid = t.group(GROUP)["id"]
    assert f"role-assignable group '{gid}' could not be read (graph 403 Authorization_RequestDenied" in out, out
    assert "the app needs GroupMember.ReadWrite.All" in out and "Traceback" not in out
    assert t.roles_of(t.user(upn)) == [] and t.groups_of(upn) == [GROUP]
    assert [m["method"] for m in t.mutations[n:]] == ["DELETE"]
