"""``remediate --user X --yes`` end to end: simulator state after the run, idempotency, dry run, refusals, undo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from remhelpers import BENIGN_RULE, Scanned, plant_compromise, user_mailboxes

from scanner.simulator import create_app, generate_tenant


@pytest.fixture
def scanned(tmp_path: Path) -> tuple[Scanned, str]:
    tenant = generate_tenant(users=40, seed=5, scenarios=False)
    upn = user_mailboxes(tenant, 1)[0]
    plant_compromise(tenant, upn)
    tenant.add_role(tenant.user(upn), "Exchange Administrator")
    s = Scanned(tmp_path, tenant, create_app(tenant))
    assert s.verdict(upn) == "compromised"
    return s, upn


def _rules(tenant: Any, upn: str) -> dict[str, Any]:
    return {r.displayName: r for r in tenant.rules(tenant.user(upn)) if not r.system}


def test_remediate_yes_secures_the_account(scanned: tuple[Scanned, str], tmp_path: Path) -> None:
    s, upn = scanned
    t = s.tenant
    u = t.user(upn)
    before_rules = {n: (r.isEnabled, dict(r.actions), dict(r.conditions)) for n, r in _rules(t, upn).items()}
    res = s.remediate("--user", upn, "--yes", "--password-file", str(tmp_path / "pw.txt"))
    assert res.exit_code == 0, res.output
    assert u.sessions_revoked == 1
    assert u.password_changed_at is not None and u.force_change_password is True
    assert u.mailbox.forwarding_smtp is None and u.mailbox.forwarding_address is None
    assert u.mailbox.deliver_and_forward is False
    rules = _rules(t, upn)
    assert rules["."].isEnabled is False
    assert rules[".."].isEnabled is False and rules[".."].hidden  # the hidden one, through Exchange
    assert rules[BENIGN_RULE].isEnabled is True
    # Disabling sent only isEnabled: conditions and actions of the disabled rules are intact (evidence kept).
    for name in (".", ".."):
        assert (rules[name].actions, rules[name].conditions) == before_rules[name][1:]
    assert not t.is_blocked(upn)
    # Optional steps only when asked: the admin role is still there, the account still enabled.
    assert t.roles_of(u) == ["Exchange Administrator"]
    assert u.accountEnabled is True
    # The hidden rule went through Disable-InboxRule, the visible one through a Graph PATCH of isEnabled only.
    methods = [(m["method"], m["detail"]) for m in t.mutations_for(upn)]
    assert any(m == "Disable-InboxRule" for m, _ in methods)
    # Journal: every change has started -> applied -> verified rows, in the safe order, unblock last.
    rows = s.journal(upn)
    applied = [r["step"] for r in rows if r["status"] == "applied"]
    assert applied[:2] == ["revoke_sessions", "reset_password"] and applied[-1] == "unblock_sending"
    for r in rows:
        if r["status"] == "applied":
            statuses = [x["status"] for x in rows if x["action_id"] == r["action_id"]]
            assert statuses == ["started", "applied", "verified"]


def test_running_again_changes_nothing(scanned: tuple[Scanned, str], tmp_path: Path) -> None:
    s, upn = scanned
    assert s.remediate("--user", upn, "--yes", "--password-file", str(tmp_path / "pw.txt")).exit_code == 0
    n = len(s.tenant.mutations)
    res = s.remediate("--user", upn, "--yes", "--password-file", str(tmp_path / "pw.txt"))
    assert res.exit_code == 0, res.output
    assert len(s.tenant.mutations) == n
    assert s.tenant.user(upn).sessions_revoked == 1
    assert (tmp_path / "pw.txt").read_text().count("\n") == 1  # one password, not two


def test_dry_run_changes_nothing(scanned: tuple[Scanned, str]) -> None:
    s, upn = scanned
    n = len(s.tenant.mutations)
    res = s.remediate("--user", upn, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "dry run" in res.output and "remove_forwarding" in res.output
    assert len(s.tenant.mutations) == n
    assert all(r["status"] in ("dry_run",) for r in s.journal(upn))


def test_no_terminal_and_no_yes_refuses(scanned: tuple[Scanned, str]) -> None:
    s, upn = scanned
    n = len(s.tenant.mutations)
    res = s.remediate("--user", upn)
    assert res.exit_code == 2
    assert "--yes" in res.output and "Traceback" not in res.output
    assert len(s.tenant.mutations) == n


def test_unknown_step_is_one_line_exit_2(scanned: tuple[Scanned, str]) -> None:
    s, upn = scanned
    res = s.remediate("--user", upn, "--step", "nuke_mailbox", "--yes")
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "unknown step 'nuke_mailbox'" in res.output


def test_unknown_user_is_exit_2(scanned: tuple[Scanned, str]) -> None:
    s, _ = scanned
    res = s.remediate("--user", "nobody@contoso.com", "--yes")
    assert res.exit_code == 2 and "no user" in res.output


def _action(s: Scanned, upn: str, step: str) -> str:
    return next(r["action_id"] for r in s.journal(upn) if r["step"] == step and r["status"] == "applied")


def test_step_runs_exactly_the_named_steps(scanned: tuple[Scanned, str]) -> None:
    s, upn = scanned
    u = s.tenant.user(upn)
    res = s.remediate("--user", upn, "--step", "block_sign_in", "--step", "disable_email_apps", "--yes")
    assert res.exit_code == 0, res.output
    assert u.accountEnabled is False
    assert not any(u.mailbox.cas[k] for k in ("MAPIEnabled", "EwsEnabled", "ActiveSyncEnabled", "ImapEnabled",
                                              "PopEnabled", "OWAEnabled"))
    assert u.sessions_revoked == 0 and u.mailbox.forwarding_smtp  # nothing else was touched
    assert s.undo(_action(s, upn, "block_sign_in")).exit_code == 0
    assert u.accountEnabled is True
    assert s.undo(_action(s, upn, "disable_email_apps")).exit_code == 0
    assert all(u.mailbox.cas[k] for k in ("MAPIEnabled", "EwsEnabled", "ActiveSyncEnabled", "ImapEnabled",
                                          "PopEnabled", "OWAEnabled"))


def test_undo_restores_forwarding_and_rules(scanned: tuple[Scanned, str], tmp_path: Path) -> None:
    s, upn = scanned
    u = s.tenant.user(upn)
    assert s.remediate("--user", upn, "--yes", "--password-file", str(tmp_path / "pw.txt")).exit_code == 0
    res = s.undo(_action(s, upn, "remove_forwarding"))
    assert res.exit_code == 0, res.output
    assert u.mailbox.forwarding_smtp and u.mailbox.forwarding_smtp.lower().endswith("drop0@gmail.com")
    for rid in [r["action_id"] for r in s.journal(upn) if r["step"] == "disable_rules" and r["status"] == "applied"]:
        assert s.undo(rid).exit_code == 0
    rules = _rules(s.tenant, upn)
    assert rules["."].isEnabled and rules[".."].isEnabled
    # Undo twice: says so, changes nothing.
    n = len(s.tenant.mutations)
    again = s.undo(_action(s, upn, "remove_forwarding"))
    assert again.exit_code == 0 and "already undone" in again.output
    assert len(s.tenant.mutations) == n


def test_undo_refuses_irreversible_and_unknown(scanned: tuple[Scanned, str], tmp_path: Path) -> None:
    s, upn = scanned
    assert s.remediate("--user", upn, "--yes", "--password-file", str(tmp_path / "pw.txt")).exit_code == 0
    res = s.undo(_action(s, upn, "reset_password"))
    assert res.exit_code == 2 and "cannot be undone" in res.output
    res = s.undo("doesnotexist")
    assert res.exit_code == 2 and "no journaled action" in res.output


def test_admin_roles_removed_when_asked(scanned: tuple[Scanned, str]) -> None:
    s, upn = scanned
    u = s.tenant.user(upn)
    res = s.remediate("--user", upn, "--step", "remove_admin_roles", "--yes")
    assert res.exit_code == 0, res.output
    assert s.tenant.roles_of(u) == []
    row = next(r for r in s.journal(upn) if r["step"] == "remove_admin_roles" and r["status"] == "started")
    assert row["before"]["roleDefinitionId"] == "29232cdf-9323-42fd-ade2-1d097af3e4de"
    assert row["before"]["directoryScopeId"] == "/"


def test_admin_roles_restored_by_undo(scanned: tuple[Scanned, str]) -> None:
    s, upn = scanned
    u = s.tenant.user(upn)
    original = next(a for a in s.tenant.role_assignments.values() if a["principalId"] == u.id)
    assert s.remediate("--user", upn, "--step", "remove_admin_roles", "--yes").exit_code == 0
    assert s.tenant.roles_of(u) == []
    aid = _action(s, upn, "remove_admin_roles")
    n = len(s.tenant.mutations)
    res = s.undo(aid)
    assert res.exit_code == 0, res.output
    assert "Exchange Administrator" in res.output and "restored" in res.output
    # The simulator holds the same assignment again: role, principal, tenant-wide scope; one POST did it.
    restored = [a for a in s.tenant.role_assignments.values() if a["principalId"] == u.id]
    assert [(a["roleDefinitionId"], a["directoryScopeId"]) for a in restored] == [
        (original["roleDefinitionId"], original["directoryScopeId"])]
    assert [(m["method"], m["path"]) for m in s.tenant.mutations[n:]] == [
        ("POST", "/roleManagement/directory/roleAssignments")]
    statuses = [r["status"] for r in s.journal(upn) if r["action_id"] == aid]
    assert statuses == ["started", "applied", "verified", "undo_started", "undone"]
    # Undo again: says so, changes nothing.
    again = s.undo(aid)
    assert again.exit_code == 0 and "already undone" in again.output
    assert len(s.tenant.mutations) == n + 1


def test_admin_role_undo_when_role_was_given_back_meanwhile(scanned: tuple[Scanned, str]) -> None:
    s, upn = scanned
    u = s.tenant.user(upn)
    assert s.remediate("--user", upn, "--step", "remove_admin_roles", "--yes").exit_code == 0
    s.tenant.add_role(u, "Exchange Administrator")  # an admin restored it by hand
    n = len(s.tenant.mutations)
    res = s.undo(_action(s, upn, "remove_admin_roles"))
    assert res.exit_code == 0 and "already assigned" in res.output
    assert s.tenant.roles_of(u) == ["Exchange Administrator"] and len(s.tenant.mutations) == n


def test_admin_role_undo_without_write_permission_is_exit_2(scanned: tuple[Scanned, str]) -> None:
    from click.testing import CliRunner
    from remhelpers import sim_tokens

    from remediators.cli import ConnectOptions, undo_command
    from scanner.graph.factory import StaticTokenCredential
    from scanner.simulator.permissions import ALL_PERMISSIONS

    s, upn = scanned
    u = s.tenant.user(upn)
    assert s.remediate("--user", upn, "--step", "remove_admin_roles", "--yes").exit_code == 0
    aid = _action(s, upn, "remove_admin_roles")
    # An app that can read roles but not write them (RoleManagement.Read.Directory only).
    graph_tok, ex_tok = sim_tokens(s.tenant, roles=sorted(ALL_PERMISSIONS - {"RoleManagement.ReadWrite.Directory",
                                                                            "Exchange.ManageAsApp"}))
    opts = ConnectOptions(credential=StaticTokenCredential(graph=graph_tok, exchange=ex_tok),
                          transport=s.env.transport, verify_timeout=0.0, poll_interval=0.0)
    res = CliRunner().invoke(undo_command, ["--config", str(s.config_path), aid], obj=opts, catch_exceptions=False)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert s.tenant.roles_of(u) == []
    assert [r["status"] for r in s.journal(upn) if r["action_id"] == aid][-1] == "undo_failed"


def _eligibility(tenant: Any, upn: str) -> list[tuple[str, str, str | None]]:
    u = tenant.user(upn)
    return [(e["roleDefinitionId"], e["directoryScopeId"], e["scheduleInfo"]["expiration"]["endDateTime"])
            for e in tenant.eligibility if e["principalId"] == u.id]


def test_pim_eligible_roles_are_removed_with_the_active_ones_and_restored_by_undo(
        scanned: tuple[Scanned, str]) -> None:
    from datetime import timedelta

    s, upn = scanned
    u = s.tenant.user(upn)
    # The attacker also made the account eligible for Global Administrator until a date: it could activate it again
    # once the active Exchange Administrator assignment is gone.
    end = s.tenant.now() + timedelta(days=90)
    s.tenant.add_eligible_role(u, "Global Administrator", end=end)
    before = _eligibility(s.tenant, upn)
    assert len(before) == 1
    res = s.remediate("--user", upn, "--step", "remove_admin_roles", "--yes")
    assert res.exit_code == 0, res.output
    assert s.tenant.roles_of(u) == [] and _eligibility(s.tenant, upn) == []
    # The revocation went through PIM's request API, as Microsoft documents it.
    revoke = [m for m in s.tenant.mutations if m["path"] == "/roleManagement/directory/roleEligibilityScheduleRequests"
              and m.get("detail", {}).get("action") == "adminRemove"]
    assert len(revoke) == 1
    rows = [r for r in s.journal(upn) if r["step"] == "remove_admin_roles"]
    eligible_started = next(r for r in rows if r["status"] == "started" and r["before"].get("eligible"))
    assert eligible_started["before"]["roleName"] == "Global Administrator"
    assert eligible_started["after"]["label"].startswith("PIM-eligible role Global Administrator (tenant-wide, until ")
    assert [r["status"] for r in rows if r["action_id"] == eligible_started["action_id"]] == [
        "started", "applied", "verified"]
    # Undo restores the eligibility with its original end date.
    res = s.undo(eligible_started["action_id"])
    assert res.exit_code == 0, res.output
    assert "restored" in res.output
    assert _eligibility(s.tenant, upn) == before
    assert s.tenant.roles_of(u) == []  # only that action was undone
    again = s.undo(eligible_started["action_id"])
    assert again.exit_code == 0 and "already undone" in again.output


def test_tenant_without_p2_has_no_eligibility_and_the_step_still_removes_active_roles(tmp_path: Path) -> None:
    tenant = generate_tenant(users=40, seed=5, scenarios=False, license="P1")
    upn = user_mailboxes(tenant, 1)[0]
    plant_compromise(tenant, upn)
    tenant.add_role(tenant.user(upn), "Exchange Administrator")
    s = Scanned(tmp_path, tenant, create_app(tenant))
    res = s.remediate("--user", upn, "--step", "remove_admin_roles", "--yes")
    assert res.exit_code == 0, res.output
    assert "P2" in res.output  # the plan's note: PIM is not available, so no eligible assignments
    assert tenant.roles_of(tenant.user(upn)) == []
    assert not [m for m in tenant.mutations if "Eligibility" in m["path"]]


def test_a_role_assigned_since_the_last_scan_is_removed_by_the_default_playbook(tmp_path: Path) -> None:
    # interface.md: the default playbook adds "the steps the account's findings name". A finding about the role itself
    # (assigned since the last scan) names remove_admin_roles, so the role goes without --step; a standing role on a
    # compromised admin stays (test_remediate_yes_secures_the_account): that one is the operator's call.
    tenant = generate_tenant(users=40, seed=5, scenarios=False)
    upn = user_mailboxes(tenant, 1)[0]
    s = Scanned(tmp_path, tenant, create_app(tenant))
    u = tenant.user(upn)
    plant_compromise(tenant, upn)
    tenant.add_role(u, "Global Administrator")
    s.rescan()
    assert s.verdict(upn) == "compromised"
    found = {f["detector"] for f in s.store.findings(s.scan_id, upn)}
    assert "roles.privileged_role_new" in found
    res = s.remediate("--user", upn, "--yes", "--password-file", str(tmp_path / "pw.txt"))
    assert res.exit_code == 0, res.output
    assert tenant.roles_of(u) == []
    assert u.mailbox.forwarding_smtp is None and u.sessions_revoked == 1
    # The optional lock-downs no finding is about stay off.
    assert u.accountEnabled is True
    assert "remove_admin_roles" in {r["step"] for r in s.journal(upn) if r["status"] == "verified"}


def test_unreadable_pim_eligibility_does_not_stop_the_active_roles_from_going(scanned: tuple[Scanned, str]) -> None:
    s, upn = scanned
    s.tenant.faults.add("/roleEligibilitySchedules", kind="status", status=403, times=None,
                        code="Authorization_RequestDenied", message="Insufficient privileges to complete the operation.")
    res = s.remediate("--user", upn, "--step", "remove_admin_roles", "--yes")
    assert res.exit_code == 0, res.output
    assert s.tenant.roles_of(s.tenant.user(upn)) == []
    assert "Entra PIM" in " ".join(res.output.split())
