"""Tenant-level findings through a real scan of the simulator: the planted third-party app in a privileged role is
reported once under its pseudo-account, the Microsoft first-party app in a role is silent, tenant-wide mail grants are
one finding per grant (never on accounts), and no clean account carries an active High/Critical finding."""

from __future__ import annotations

from typing import Any

from scanner.store import Store
from scanner.sweep import run_scan


def _rows(env: Any, scan_id: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    with Store(env.cfg.database_path) as store:
        return store.findings(scan_id), {a["upn"].lower(): a["verdict"] for a in store.accounts(scan_id)}


async def test_planted_service_principal_and_tenant_wide_grants(make_sim_env: Any) -> None:
    env = make_sim_env(users=60, seed=7, scenarios=True)
    t = env.tenant
    # Ground truth for tenant objects lives apart from the UPN-keyed labels.
    assert t.tenant_labels and all(k.startswith("transportrule:") or "@" not in k and k.startswith("serviceprincipal:")
                                   for k in t.tenant_labels)
    assert all("@" in k for k in t.labels)
    bad = next(k for k, v in t.tenant_labels.items() if v["label"] == "compromised")
    benign = next(k for k, v in t.tenant_labels.items() if v["label"] == "benign_lookalike")

    r1 = await run_scan(env.cfg, **env.kwargs)
    findings, verdicts = _rows(env, r1.scan_id)
    sp_rows = [f for f in findings if f["detector"] == "roles.service_principal_privileged"]
    assert [f["account"] for f in sp_rows] == [bad]
    assert sp_rows[0]["evidence"]["role"] == "Privileged Role Administrator"
    assert sp_rows[0]["evidence"]["app_owner_organization_id"] == "3c9f5a1e-7b2d-4e8f-9a6c-1d2e3f4a5b6c"
    assert not [f for f in findings if f["account"] == benign]

    grants = [f for f in findings if f["detector"] == "oauth.tenant_wide_mail_grant"]
    apps = sorted(f["evidence"]["app"] for f in grants)
    assert apps == ["Office Document Viewer", "Veeam Backup for Microsoft 365"]  # once each, not once per admin
    assert all(f["account"].startswith("serviceprincipal:") and f["account"].lower() not in verdicts for f in grants)
    by_app = {f["evidence"]["app"]: f for f in grants}
    assert by_app["Office Document Viewer"]["severity"] == "high"  # unverified publisher
    assert by_app["Veeam Backup for Microsoft 365"]["severity"] == "medium"  # verified backup product: review

    # The invariant end to end: a clean account never shows an active, unsuppressed High/Critical finding.
    for f in findings:
        v = verdicts.get(f["account"].lower())
        if v == "clean" and f["status"] == "active" and not f["suppressed"]:
            assert f["severity"] not in ("high", "critical"), f

    # Overnight a new tenant-wide mail consent appears while a consent-capable admin (miriam.graham, Cloud
    # Application Administrator) shows a fresh authenticator: Critical, with her named as a candidate, not as the
    # grantor (the grant does not say who consented).
    t.add_grant(None, "Mail Sync Pro", "Mail.ReadWrite offline_access User.Read", consent_type="AllPrincipals")
    r2 = await run_scan(env.cfg, **env.kwargs)
    findings2, _ = _rows(env, r2.scan_id)
    (new,) = [f for f in findings2 if f["detector"] == "oauth.tenant_wide_mail_grant"
              and f["evidence"]["app"] == "Mail Sync Pro"]
    assert new["severity"] == "critical" and new["new_since_last_scan"] is True
    assert "miriam.graham@contoso.com" in new["evidence"]["candidate_granting_admins"]
    assert new["evidence"]["granting_admin"] is None
    old = [f for f in findings2 if f["detector"] == "oauth.tenant_wide_mail_grant" and f["evidence"]["app"] != "Mail Sync Pro"]
    assert len(old) == 2 and not any(f["new_since_last_scan"] for f in old)


async def test_grants_unreadable_last_night_are_not_new_tonight(make_sim_env: Any) -> None:
    env = make_sim_env(users=60, seed=7, scenarios=True)
    # Night 1: the grants source fails for good (503 on every try) — a coverage gap, never "no grants".
    env.tenant.faults.add(r"oauth2PermissionGrants", kind="status", status=503, times=10_000)
    r1 = await run_scan(env.cfg, **env.kwargs)
    assert any(e["collector"] == "oauth_grants" for e in r1.errors), r1.errors
    env.tenant.faults.clear()
    r2 = await run_scan(env.cfg, **env.kwargs)
    findings2, _ = _rows(env, r2.scan_id)
    grants = [f for f in findings2 if f["detector"] == "oauth.tenant_wide_mail_grant"]
    assert sorted(f["evidence"]["app"] for f in grants) == ["Office Document Viewer", "Veeam Backup for Microsoft 365"]
    # Night 1 gave no baseline, so nothing is escalated as "new since the last scan".
    assert not any(f["new_since_last_scan"] for f in grants)
    assert all(f["severity"] != "critical" for f in grants)
