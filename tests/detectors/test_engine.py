"""evaluate_scan over a Store (no network): coverage gaps, verdicts, sent-volume baseline; allow-list expiry."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from detectors._model import Finding, Severity
from detectors.engine import allowlist_from_config, evaluate_scan
from detectors.verdict import decide
from scanner.config import AllowlistSection
from scanner.snapshot import OAuthGrant, SendingStatus
from scanner.store import Store
from tests.detectors.builders import NOW, TENANT, account_from_spec, clean_account, evaluate_spec
from tests.detectors.detector_cases import CASES
from tests.detectors.evaluation import load_cases


def _scan(store: Store, accounts: list, tenant: object = None) -> str:
    sid = store.begin_scan(TENANT.tenant_id)
    store.put_accounts(sid, accounts)
    if tenant is not None:
        store.set_tenant(sid, tenant.model_dump(mode="json"))  # type: ignore[attr-defined]
    store.finish_scan(sid, "complete")
    return sid


def test_evaluate_scan_records_gaps_verdicts_and_baseline(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        gap = account_from_spec({"not_collected": ["inbox_rules"]}, "gap@contoso.com")
        bad = account_from_spec({"forwarding": {"forwarding_smtp_address": "x@gmail.com"},
                                 "rules": [{"displayName": ".", "actions": {"delete": True, "markAsRead": True}}]},
                                "bad@contoso.com")
        s1 = _scan(store, [clean_account("busy@contoso.com"), gap, bad])
        summary = evaluate_scan(store, s1, tenant=TENANT, allowlist=allowlist_from_config(AllowlistSection(), NOW)[0],
                                now=NOW)
        assert summary.accounts == 3 and summary.verdicts.get("compromised") == 1
        assert summary.not_evaluated > 0
        errs = [e for e in store.errors(s1) if e["upn"] == "gap@contoso.com"]
        assert errs and errs[0]["collector"] == "detectors:inbox_rules" and "not evaluated" in errs[0]["message"]
        verdicts = {a["upn"]: a for a in store.accounts(s1)}
        assert verdicts["bad@contoso.com"]["verdict"] == "compromised"
        assert any(r.startswith("near-certain") for r in verdicts["bad@contoso.com"]["reasons"])
        assert verdicts["busy@contoso.com"]["verdict"] == "clean"
        # Later scans: the engine builds the per-account sent baseline from stored scans.
        for _ in range(3):
            sid = _scan(store, [clean_account("busy@contoso.com")])
            evaluate_scan(store, sid, tenant=TENANT, allowlist=allowlist_from_config(AllowlistSection(), NOW)[0],
                          now=NOW)
        spike = clean_account("busy@contoso.com").model_copy(
            update={"sending": SendingStatus(sent_last_24h=1200)})
        s5 = _scan(store, [spike])
        evaluate_scan(store, s5, tenant=TENANT, allowlist=allowlist_from_config(AllowlistSection(), NOW)[0], now=NOW)
        f = [x for x in store.findings(s5) if x["detector"] == "sending.volume_spike"]
        assert f and f[0]["evidence"]["baseline_median"] == 20 and f[0]["new_since_last_scan"]


def test_allowlist_expiry_warns_and_is_not_applied() -> None:
    section = AllowlistSection(forwarding_domains=[
        "partner.com", {"value": "old-partner.com", "reason": "2024 project", "expires": date(2025, 1, 1)},
        {"value": "current.com", "expires": (NOW + timedelta(days=30)).date()}])
    allow, warnings = allowlist_from_config(section, NOW)
    assert [e.value for e in allow.forwarding_domains] == ["partner.com", "current.com"]
    assert len(warnings) == 1 and "old-partner.com" in warnings[0] and "expired" in warnings[0]


# ---- verdict invariant: a clean account never carries an active, unsuppressed High/Critical finding ----------------
def _finding(sev: Severity, score: int = 0, **kw: object) -> Finding:
    return Finding(detector="roles.privileged_account_backdoor", account="alice@contoso.com", technique="T1078.004",
                   severity=sev, title="t", evidence={}, artefact="x", score=score, **kw)  # type: ignore[arg-type]


def test_high_or_critical_finding_makes_the_account_at_least_suspicious_whatever_its_score() -> None:
    for sev in (Severity.HIGH, Severity.CRITICAL):
        assert decide([_finding(sev, 0)]).verdict == "suspicious"
    assert decide([_finding(Severity.MEDIUM, 0)]).verdict == "clean"
    # Suppressed (allow-listed) evidence is shown, not counted; a vanished (transient) one is not active.
    assert decide([_finding(Severity.HIGH, 0, suppressed="allowlist: x")]).verdict == "clean"
    assert decide([_finding(Severity.HIGH, 0, status="transient")]).verdict == "clean"


def test_no_clean_account_with_a_high_finding_across_every_case() -> None:
    specs = [c["spec"] for c in load_cases()] + [c[2] for c in CASES]
    for spec in specs:
        res = evaluate_spec(spec)
        if res.verdict == "clean":
            loud = [f.detector for f in res.findings
                    if f.suppressed is None and f.status == "active" and f.severity >= Severity.HIGH]
            assert loud == [], spec


def test_tenant_wide_grant_is_reported_once_and_raises_no_account(tmp_path: Path) -> None:
    grant = OAuthGrant(id="tg-1", client_id="sp-1", app_id="a7c1e0f2-0000-4000-8000-00000000a7c1",
                       app_display_name="Office Document Viewer", consent_type="AllPrincipals",
                       scopes=("Mail.Read", "offline_access"))
    admin = account_from_spec({"roles": ["Global Administrator"]}, "admin@contoso.com")
    accounts = [admin, clean_account("bob@contoso.com")]
    allow = allowlist_from_config(AllowlistSection(), NOW)[0]
    with Store(tmp_path / "db.sqlite") as store:
        t0 = TENANT.model_copy(update={"privileged_principals": ()})
        s1 = _scan(store, accounts, t0)
        evaluate_scan(store, s1, tenant=t0, allowlist=allow, now=NOW)
        assert store.findings(s1) == []
        # Overnight: the grant appears and the admin registers a new phone (C1) — the grant cannot name who consented.
        t1 = t0.model_copy(update={"all_principals_grants": (grant,)})
        admin2 = account_from_spec({"roles": ["Global Administrator"], "methods": [
            {"id": "m-new", "phone_number": "+7 900 1234567", "created_hours_ago": 3}]}, "admin@contoso.com")
        s2 = _scan(store, [admin2, clean_account("bob@contoso.com")], t1)
        evaluate_scan(store, s2, tenant=t1, allowlist=allow, now=NOW)
        grants = [f for f in store.findings(s2) if f["detector"] == "oauth.tenant_wide_mail_grant"]
        assert len(grants) == 1, grants  # once for the tenant, not once per account
        (g,) = grants
        assert g["account"] == "serviceprincipal:Office Document Viewer (a7c1e0f2-0000-4000-8000-00000000a7c1)"
        assert g["severity"] == "critical" and g["new_since_last_scan"] is True
        assert g["evidence"]["candidate_granting_admins"] == {"admin@contoso.com": ["Global Administrator"]}
        verdicts = {a["upn"]: a["verdict"] for a in store.accounts(s2)}
        assert verdicts["bob@contoso.com"] == "clean"
        assert set(verdicts) == {"admin@contoso.com", "bob@contoso.com"}  # no verdict row for the app
        assert not [f for f in store.findings(s2, "bob@contoso.com")]
