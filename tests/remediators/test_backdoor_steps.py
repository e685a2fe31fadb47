"""Finding-driven steps against the simulator: auth methods, consent grants, delegates; stale plans; synced users."""

from __future__ import annotations

import asyncio
from pathlib import Path

from remhelpers import Scanned, plant_compromise, user_mailboxes

from remediators._model import StalePlanError, StepContext, read_account
from remediators.checklist import manual_checklist
from remediators.steps import STEPS
from scanner.graph.factory import connect
from scanner.simulator import create_app, generate_tenant


def _setup(tmp_path: Path) -> tuple[Scanned, str, str, dict]:
    t = generate_tenant(users=40, seed=5, scenarios=False)
    upn, other = user_mailboxes(t, 2)
    u = t.user(upn)
    plant_compromise(t, upn)
    method = t.add_method(u, "microsoftAuthenticatorMethods", {"displayName": "SM-A546E",
                          "deviceTag": "SoftwareTokenActivated", "phoneAppVersion": "6.2404.2229"}, created=t.now())
    t.add_grant(u, "PerfectData Software", "Mail.ReadWrite offline_access")
    s = Scanned(tmp_path, t, create_app(t))
    return s, upn, other, method


def test_methods_and_grants_named_by_findings_are_removed(tmp_path: Path) -> None:
    s, upn, _, method = _setup(tmp_path)
    t, u = s.tenant, s.tenant.user(upn)
    other_methods = {m["id"] for m in t.methods(u)} - {method["id"]}
    res = s.remediate("--user", upn, "--step", "remove_auth_methods", "--step", "revoke_oauth_grants", "--yes")
    assert res.exit_code == 0, res.output
    assert {m["id"] for m in t.methods(u)} == other_methods  # only the attacker's method went
    assert not [g for g in t.grants_for_user(u) if "Mail.ReadWrite" in g["scope"]]
    deletes = [m["path"] for m in t.mutations if m["method"] == "DELETE"]
    assert f"/users/{u.id}/authentication/microsoftAuthenticatorMethods/{method['id']}" in deletes


def test_an_external_mfa_method_named_by_a_finding_is_deleted_by_reference(tmp_path: Path) -> None:
    # An external authentication method (a third-party MFA provider an admin registered on the account) is deleted
    # with DELETE .../externalAuthenticationMethods/{id}/$ref, as Microsoft documents it.
    t = generate_tenant(users=40, seed=5, scenarios=False)
    upn = user_mailboxes(t, 1)[0]
    u = t.user(upn)
    plant_compromise(t, upn)
    ext = t.add_method(u, "externalAuthenticationMethods", {"displayName": "Attacker MFA",
                                                            "configurationId": "7f3d9a1c-0000-4000-8000-00000000e4a1"},
                       created=t.now())
    s = Scanned(tmp_path, t, create_app(t))
    named = [f for f in s.store.findings(s.scan_id, upn) if f["detector"] == "auth.new_method"]
    assert any(ext["id"] in str(f["evidence"]) for f in named), named
    res = s.remediate("--user", upn, "--step", "remove_auth_methods", "--yes")
    assert res.exit_code == 0, res.output
    assert ext["id"] not in {m["id"] for m in t.methods(u)}
    deletes = [m["path"] for m in t.mutations if m["method"] == "DELETE"]
    assert f"/users/{u.id}/authentication/externalAuthenticationMethods/{ext['id']}" in deletes


def test_delegates_named_by_findings_are_removed(tmp_path: Path) -> None:
    s, upn, other, _ = _setup(tmp_path)
    t, u = s.tenant, s.tenant.user(upn)
    t.add_delegate(upn, other, "FullAccess")
    s.rescan()  # a delegate is a finding when it is new since the last scan
    res = s.remediate("--user", upn, "--step", "remove_delegates", "--yes")
    assert res.exit_code == 0, res.output
    assert [p["User"] for p in t.mailbox_permissions(u)] == ["NT AUTHORITY\\SELF"]
    assert [p["Trustee"] for p in t.recipient_permissions(u)] == ["NT AUTHORITY\\SELF"]


def _applied(s: Scanned, upn: str, step: str) -> list[dict]:
    return [r for r in s.journal(upn) if r["step"] == step and r["status"] == "applied"]


def test_delegates_restored_by_undo(tmp_path: Path) -> None:
    s, upn, other, _ = _setup(tmp_path)
    t, u = s.tenant, s.tenant.user(upn)
    t.add_delegate(upn, other, "FullAccess")
    t.add_delegate(upn, other, "SendAs")
    s.rescan()
    assert s.remediate("--user", upn, "--step", "remove_delegates", "--yes").exit_code == 0
    actions = {r["target"]: r["action_id"] for r in _applied(s, upn, "remove_delegates")}
    assert set(actions) == {f"FullAccess:{other.lower()}", f"SendAs:{other.lower()}"}
    n = len(t.mutations)
    for aid in actions.values():
        res = s.undo(aid)
        assert res.exit_code == 0, res.output
        assert "restored" in res.output
    # Exactly the removed entries are back, through Add-MailboxPermission / Add-RecipientPermission.
    full = [p for p in t.mailbox_permissions(u) if p["User"].lower() == other.lower()]
    assert [(p["AccessRights"], p["IsInherited"], p["Deny"], p["InheritanceType"]) for p in full] == [
        (["FullAccess"], False, False, "All")]
    assert full[0]["AutoMapping"] is False  # restoring must not pop the mailbox into the trustee's Outlook
    send_as = [p for p in t.recipient_permissions(u) if p["Trustee"].lower() == other.lower()]
    assert [(p["AccessRights"], p["AccessControlType"]) for p in send_as] == [(["SendAs"], "Allow")]
    assert sorted(m["method"] for m in t.mutations[n:]) == ["Add-MailboxPermission", "Add-RecipientPermission"]
    for aid in actions.values():
        assert [r["status"] for r in s.journal(upn) if r["action_id"] == aid][-2:] == ["undo_started", "undone"]


def test_send_on_behalf_restored_by_undo(tmp_path: Path) -> None:
    s, upn, other, _ = _setup(tmp_path)
    t, u = s.tenant, s.tenant.user(upn)
    t.add_delegate(upn, other, "SendOnBehalf")
    s.rescan()
    assert s.remediate("--user", upn, "--step", "remove_delegates", "--yes").exit_code == 0
    assert u.mailbox.grant_send_on_behalf == []
    (row,) = _applied(s, upn, "remove_delegates")
    res = s.undo(row["action_id"])
    assert res.exit_code == 0, res.output
    assert [x.lower() for x in u.mailbox.grant_send_on_behalf] == [other.lower()]


def test_grant_restored_by_undo_with_identical_key(tmp_path: Path) -> None:
    s, upn, _, _ = _setup(tmp_path)
    t, u = s.tenant, s.tenant.user(upn)
    (bad,) = [g for g in t.grants_for_user(u) if "Mail.ReadWrite" in g["scope"]]
    assert s.remediate("--user", upn, "--step", "revoke_oauth_grants", "--yes").exit_code == 0
    assert not [g for g in t.grants_for_user(u) if g["clientId"] == bad["clientId"]]
    (row,) = _applied(s, upn, "revoke_oauth_grants")
    n = len(t.mutations)
    res = s.undo(row["action_id"])
    assert res.exit_code == 0, res.output
    (back,) = [g for g in t.grants_for_user(u) if g["clientId"] == bad["clientId"]]
    fields = ("clientId", "consentType", "principalId", "resourceId", "scope")
    assert {k: back[k] for k in fields} == {k: bad[k] for k in fields}
    assert [(m["method"], m["path"]) for m in t.mutations[n:]] == [("POST", "/oauth2PermissionGrants")]
    # The result names the id Graph gave the re-created grant and says whether it changed.
    assert back["id"] in res.output
    assert ("same id as before" in res.output) == (back["id"] == bad["id"])
    # Undo again changes nothing.
    assert "already undone" in s.undo(row["action_id"]).output
    assert len(t.mutations) == n + 1


def test_grant_undo_refuses_to_overwrite_a_different_grant(tmp_path: Path) -> None:
    s, upn, _, _ = _setup(tmp_path)
    t, u = s.tenant, s.tenant.user(upn)
    (bad,) = [g for g in t.grants_for_user(u) if "Mail.ReadWrite" in g["scope"]]
    assert s.remediate("--user", upn, "--step", "revoke_oauth_grants", "--yes").exit_code == 0
    app = next(sp["displayName"] for sp in t.service_principals.values() if sp["id"] == bad["clientId"])
    t.add_grant(u, app, "User.Read")  # the user consented again, to less
    n = len(t.mutations)
    (row,) = _applied(s, upn, "revoke_oauth_grants")
    res = s.undo(row["action_id"])
    assert res.exit_code == 2 and "review it by hand" in res.output
    assert [g["scope"] for g in t.grants_for_user(u) if g["clientId"] == bad["clientId"]] == ["User.Read"]
    assert len(t.mutations) == n


def test_stale_plan_is_never_applied(tmp_path: Path) -> None:
    s, upn, _, _ = _setup(tmp_path)
    t = s.tenant

    async def go() -> None:
        async with connect(s.env.cfg, **s.env.kwargs) as conn:
            acc = await read_account(conn.graph, upn)
            ctx = StepContext(graph=conn.graph, exchange=conn.exchange)
            step = STEPS["remove_forwarding"]
            plan = await step.plan(ctx, acc)
            assert plan.targets
            t.set_forwarding(upn, smtp="smtp:changed@evil.example")  # the tenant drifts after the plan
            n = len(t.mutations)
            try:
                await step.apply(ctx, plan)
            except StalePlanError:
                pass
            else:
                raise AssertionError("a stale plan was applied")
            assert len(t.mutations) == n

    asyncio.run(go())
    assert t.user(upn).mailbox.forwarding_smtp == "smtp:changed@evil.example"


def test_synced_account_password_is_not_reset(tmp_path: Path) -> None:
    s, upn, _, _ = _setup(tmp_path)
    u = s.tenant.user(upn)
    u.onPremisesSyncEnabled = True
    res = s.remediate("--user", upn, "--step", "reset_password", "--yes", "--password-file",
                      str(tmp_path / "pw.txt"))
    assert res.exit_code == 1, res.output  # not done here: the operator must act on-premises
    assert "on-premises" in res.output
    assert u.password_changed_at is None
    row = next(r for r in s.journal(upn) if r["step"] == "reset_password")
    assert row["status"] == "skipped" and "on-premises" in row["detail"]
    assert not (tmp_path / "pw.txt").exists()


def test_manual_checklist_covers_what_no_api_does(tmp_path: Path) -> None:
    s, upn, _, _ = _setup(tmp_path)
    snap = s.store.get_account(s.scan_id, upn)
    items = manual_checklist(snap, s.store.findings(s.scan_id, upn))
    titles = " | ".join(i["title"] for i in items)
    for needle in ("app passwords", "legacy authentication", "Sent Items", "Warn", "contact", "other services"):
        assert needle.lower() in titles.lower(), needle
    assert "on-premises" not in titles
    assert all(set(i) == {"title", "detail"} for i in items)
    synced = snap.model_copy(update={"user": snap.user.model_copy(update={"on_premises_sync_enabled": True})})
    assert manual_checklist(synced, [])[0]["title"] == "Change the password on-premises"
