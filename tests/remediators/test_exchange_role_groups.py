"""Exchange role groups end to end through the simulator: a scan, the attacker's overnight addition of a taken-over
mailbox to Organization Management, a rescan that reports ``roles.exchange_role_group_new`` (High, T1098.003) and a
compromised verdict; ``remediate --step remove_admin_roles --yes`` takes the account out with Remove-RoleGroupMember
(journal started / applied / verified), ``undo`` adds it back with Add-RoleGroupMember; role groups the app may not
read are named in the plan, never read as "not a member"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from remhelpers import Scanned

from remediators.cli import remediate_command
from remediators.runner import choose_steps
from reports.evidence import evidence_sentence
from scanner.simulator import create_app, generate_tenant, role_assignments, role_groups
from scanner.simulator.app import SimOptions

STEP = "remove_admin_roles"
ORG = "Organization Management"
DETECTOR = "roles.exchange_role_group_new"


def _rows(s: Scanned, upn: str) -> list[dict[str, Any]]:
    return [r for r in s.journal(upn) if r["step"] == STEP]


@pytest.fixture
def overnight(tmp_path: Path) -> tuple[Scanned, str]:
    tenant = generate_tenant(users=60, seed=7, scenarios=True)
    s = Scanned(tmp_path, tenant, create_app(tenant))
    upn = f"adele.vance@{tenant.primary_domain}"
    assert not [f for f in s.store.findings(s.scan_id, upn) if f["detector"] == DETECTOR]
    assert role_groups.apply_overnight(tenant) == ["exchange_role_group_added"]
    s.rescan()
    return s, upn


def test_rescan_reports_the_new_membership_and_the_step_removes_it_then_undo_restores_it(
        overnight: tuple[Scanned, str]) -> None:
    s, upn = overnight
    t = s.tenant
    nathan = f"nathan.yates@{t.primary_domain}"
    found = [f for f in s.store.findings(s.scan_id) if f["detector"] == DETECTOR]
    assert [f["account"].lower() for f in found] == [upn.lower()]  # the standing admin is no finding
    f = found[0]
    assert f["severity"] == "high" and f["technique"] == "T1098.003"
    ev = f["evidence"]
    assert ev["role_group"] == ORG and "Role Management" in ev["roles"] and ev["first_seen"]
    assert "Remove-RoleGroupMember" in ev["removal"]
    assert s.verdict(upn) == "compromised"
    assert STEP in choose_steps(None, s.store.findings(s.scan_id, upn))  # the finding is about the role itself

    n = len(t.mutations)
    res = s.remediate("--user", upn, "--step", STEP, "--yes")
    assert res.exit_code == 0, res.output
    assert upn not in role_groups.members_of(t, ORG) and nathan in role_groups.members_of(t, ORG)
    assert [(m["method"], m["detail"]) for m in t.mutations[n:]] == [("Remove-RoleGroupMember", {"RoleGroup": ORG})]
    started = next(r for r in _rows(s, upn) if r["status"] == "started")
    assert started["target"] == f"exorolegroup:{ORG}"
    assert started["before"]["exchangeRoleGroup"] == ORG and started["before"]["member"] == upn
    assert "Role Management" in started["before"]["roles"]
    assert started["after"]["label"].startswith(f"member of Exchange role group '{ORG}' (roles ")
    aid = started["action_id"]
    assert [r["status"] for r in _rows(s, upn) if r["action_id"] == aid] == ["started", "applied", "verified"]

    # Applying again: nothing left to remove.
    n = len(t.mutations)
    assert s.remediate("--user", upn, "--step", STEP, "--yes").exit_code == 0
    assert len(t.mutations) == n

    res = s.undo(aid)
    assert res.exit_code == 0, res.output
    assert "restored" in res.output and ORG in res.output
    assert upn in role_groups.members_of(t, ORG)
    assert [m["method"] for m in t.mutations[n:]] == ["Add-RoleGroupMember"]
    assert [r["status"] for r in _rows(s, upn) if r["action_id"] == aid] == [
        "started", "applied", "verified", "undo_started", "undone"]


def test_undo_when_an_admin_put_it_back_meanwhile(overnight: tuple[Scanned, str]) -> None:
    s, upn = overnight
    assert s.remediate("--user", upn, "--step", STEP, "--yes").exit_code == 0
    aid = next(r["action_id"] for r in _rows(s, upn) if r["status"] == "applied")
    role_groups.add_member(s.tenant, ORG, upn)
    res = s.undo(aid)
    assert res.exit_code == 0 and "already a member" in res.output, res.output


def test_role_groups_the_app_may_not_read_are_named_in_the_plan(tmp_path: Path) -> None:
    tenant = generate_tenant(users=60, seed=7, scenarios=True)
    role_groups.apply_overnight(tenant)
    app = create_app(tenant, SimOptions(exchange_rbac_denied=frozenset({"Get-RoleGroupMember"})))
    s = Scanned(tmp_path, tenant, app)
    upn = f"adele.vance@{tenant.primary_domain}"
    n = len(tenant.mutations)
    res = CliRunner().invoke(remediate_command, ["--config", str(s.config_path), "--user", upn, "--step", STEP,
                                                 "--yes"], obj=s.options(), catch_exceptions=False,
                             env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.replace("│", " ").split())
    assert "Exchange role group(s) could not be read" in out and "View-Only Configuration" in out, out
    assert "'Organization Management' (exchange 403" in out
    assert len(tenant.mutations) == n and upn in role_groups.members_of(tenant, ORG)  # unknown: nothing changed


def test_a_membership_through_a_group_inside_the_role_group_is_named_in_the_plan_not_removed(tmp_path: Path) -> None:
    tenant = generate_tenant(users=60, seed=7, scenarios=True)
    ops = tenant.add_group("Exchange Operators", mail=True)
    role_groups.add_member(tenant, ORG, "Exchange Operators")
    s = Scanned(tmp_path, tenant, create_app(tenant))
    upn = f"megan.bowen@{tenant.primary_domain}"
    tenant.add_group_member(ops, tenant.user(upn))  # overnight, through the group
    s.rescan()
    (f,) = [f for f in s.store.findings(s.scan_id, upn) if f["detector"] == DETECTOR]
    assert f["evidence"]["via_group"] == "ExchangeOperators" and "Remove-DistributionGroupMember" in \
        f["evidence"]["removal"]
    n = len(tenant.mutations)
    res = CliRunner().invoke(remediate_command, ["--config", str(s.config_path), "--user", upn, "--step", STEP,
                                                 "--yes"], obj=s.options(), catch_exceptions=False,
                             env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.replace("│", " ").split())
    assert f"holds Exchange role group '{ORG}' through mail-enabled group 'Exchange Operators': not removed" in out, out
    assert "Remove-DistributionGroupMember -Identity 'Exchange Operators'" in out
    # nothing edited: the group and the role group are as they were
    assert len(tenant.mutations) == n and tenant.groups_of(upn) == ["Exchange Operators"]
    other = f"adele.vance@{tenant.primary_domain}"
    plan = CliRunner().invoke(remediate_command, ["--config", str(s.config_path), "--user", other, "--step", STEP,
                                                  "--dry-run"], obj=s.options(), catch_exceptions=False,
                              env={"COLUMNS": "400"})
    assert "through mail-enabled group" not in plan.output  # not in the group: no such note


def test_a_role_assigned_directly_is_reported_removed_and_restored(tmp_path: Path) -> None:
    tenant = generate_tenant(users=60, seed=7, scenarios=True)
    nathan = f"nathan.yates@{tenant.primary_domain}"
    role_assignments.assign(tenant, "Mailbox Import Export", nathan)  # standing before the first scan: no finding
    s = Scanned(tmp_path, tenant, create_app(tenant))
    upn = f"megan.bowen@{tenant.primary_domain}"
    nick = tenant.user(upn).mailNickname
    role_assignments.assign(tenant, "Mailbox Search", upn)  # overnight: the attacker's direct assignment
    s.rescan()
    found = [f for f in s.store.findings(s.scan_id) if f["detector"] == DETECTOR]
    assert [f["account"].lower() for f in found] == [upn.lower()]
    ev = found[0]["evidence"]
    assert ev["direct_assignment"] is True and ev["role_group_type"] == "DirectAssignment"
    assert ev["role_group"] == f"Mailbox Search-{nick}" and ev["roles"] == ["Mailbox Search"]
    assert ev["removal"].startswith(f"Remove-ManagementRoleAssignment -Identity 'Mailbox Search-{nick}'")
    assert evidence_sentence(DETECTOR, ev).startswith(
        f"Was given the Exchange management role Mailbox Search directly (assignment 'Mailbox Search-{nick}')")
    assert s.verdict(upn) == "compromised"
    assert STEP in choose_steps(None, s.store.findings(s.scan_id, upn))

    n = len(tenant.mutations)
    res = s.remediate("--user", upn, "--step", STEP, "--yes")
    assert res.exit_code == 0, res.output
    assert role_assignments.assignments_of(tenant, upn) == []
    assert role_assignments.assignments_of(tenant, nathan) == ["Mailbox Import Export"]  # someone else's: untouched
    assert [(m["method"], m["detail"]) for m in tenant.mutations[n:]] == [
        ("Remove-ManagementRoleAssignment", {"Role": "Mailbox Search", "Name": f"Mailbox Search-{nick}"})]
    started = next(r for r in _rows(s, upn) if r["status"] == "started")
    assert started["target"] == f"exoroleassignment:Mailbox Search-{nick}"
    assert started["before"]["role"] == "Mailbox Search" and started["before"]["member"] == upn
    aid = started["action_id"]
    assert [r["status"] for r in _rows(s, upn) if r["action_id"] == aid] == ["started", "applied", "verified"]
    s.rescan()
    assert not [f for f in s.store.findings(s.scan_id, upn) if f["detector"] == DETECTOR and f["status"] == "active"]

    res = s.undo(aid)
    assert res.exit_code == 0, res.output
    assert "assigned again" in res.output
    assert role_assignments.assignments_of(tenant, upn) == ["Mailbox Search"]
    res = s.undo(aid)  # nothing left to undo: refused or already done, never a second assignment
    assert role_assignments.assignments_of(tenant, upn) == ["Mailbox Search"]
