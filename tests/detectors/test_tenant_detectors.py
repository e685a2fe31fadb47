"""Tenant-level detectors (run once per scan over TenantInfo) and the engine's tenant-wide coverage-gap rows."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from detectors._model import AllowEntry, Allowlist, ScanContext, Severity, TenantFacts
from detectors.engine import allowlist_from_config, evaluate_scan, evaluate_tenant, tenant_catalogue
from scanner.config import STEP_NAMES, AllowlistSection
from scanner.snapshot import AppRoleGrant, NotCollected, OAuthGrant, PrivilegedPrincipal, TenantInfo, TransportRule
from scanner.store import Store
from tests.detectors.builders import NOW, TENANT, account_from_spec, allowlist_from_spec, clean_account
from tests.detectors.detector_cases import ADMIN, ARCHIVER, TENANT_CASES

SP_DET = "roles.service_principal_privileged"
GA = "62e90394-69f5-4237-9190-012177145e10"
EVIL_OWNER = "9f3e0d1c-1111-4a4a-8b8b-2d7cd0aa0001"  # some other organisation's tenant


def sp(name: str = "Mail Backup Sync", app_id: str = "a1b2c3d4-0000-4000-8000-00000000beef", *,
       owner: str | None = EVIL_OWNER, sp_id: str = "5e0c1a2b-3333-4c4c-9d9d-00000000aaaa", kind: str = "active",
       ptype: str = "servicePrincipal", scope: str = "/", role: str = GA) -> PrivilegedPrincipal:
    return PrivilegedPrincipal(id=sp_id, principal_type=ptype, display_name=name, app_id=app_id,
                               app_owner_organization_id=owner, service_principal_type="Application",
                               assignment_id=f"asg-{sp_id}", role_definition_id=role, role_template_id=role,
                               role_name="Global Administrator", kind=kind, directory_scope_id=scope)  # type: ignore[arg-type]


def tenant_with(*principals: PrivilegedPrincipal | None) -> TenantInfo:
    pp = None if principals == (None,) else tuple(p for p in principals if p is not None)
    return TENANT.model_copy(update={"privileged_principals": pp})


def run(tenant: TenantInfo, previous: TenantInfo | None = None, allowlist: Allowlist | None = None) -> tuple:
    ctx = ScanContext(tenant=tenant, now=NOW, allowlist=allowlist or Allowlist(), first_scan=previous is None,
                      previous_tenant=previous)
    return evaluate_tenant(tenant, TenantFacts(), ctx)


def test_tenant_catalogue_metadata() -> None:
    cat = tenant_catalogue()
    assert SP_DET in {d.meta.id for d in cat}
    for d in cat:
        m = d.meta
        assert d.module == f"detectors.{m.id}"
        assert m.rationale and m.false_positives
        # remediation steps act on one account; a tenant object is fixed by hand, so the detector says how
        assert m.remediation == () and len(m.manual) > 40, m.id
        assert set(m.remediation) <= set(STEP_NAMES)
        doc = importlib.import_module(d.module).__doc__ or ""
        assert "Sees" in doc and "Misses" in doc and "pseudo-account" in doc.lower()


def test_standing_third_party_sp_in_global_admin_is_medium_with_a_pseudo_account() -> None:
    findings, gaps = run(tenant_with(sp()))
    assert gaps == []
    (f,) = findings
    assert f.detector == SP_DET and f.severity == Severity.MEDIUM and f.new_since_last_scan is False
    assert f.account == "serviceprincipal:Mail Backup Sync (a1b2c3d4-0000-4000-8000-00000000beef)"
    assert f.evidence["app_owner_organization_id"] == EVIL_OWNER and f.evidence["role"] == "Global Administrator"
    assert "@" not in f.account  # never looks like a UPN: no verdict row, never auto-remediated


def test_new_since_previous_scan_is_high_and_held_before_is_medium() -> None:
    before = tenant_with(sp(name="Old Tool", app_id="0000aaaa-0000-4000-8000-000000000001",
                            sp_id="5e0c1a2b-3333-4c4c-9d9d-000000000001"))
    now = tenant_with(before.privileged_principals[0], sp())  # type: ignore[index]
    findings, _ = run(now, previous=before)
    by_name = {f.evidence["service_principal"]: f for f in findings}
    assert by_name["Mail Backup Sync"].severity == Severity.HIGH and by_name["Mail Backup Sync"].new_since_last_scan
    assert by_name["Old Tool"].severity == Severity.MEDIUM and by_name["Old Tool"].new_since_last_scan is False
    # High sorts first.
    assert findings[0].evidence["service_principal"] == "Mail Backup Sync"


def test_previous_scan_without_role_data_gives_no_baseline() -> None:
    findings, _ = run(tenant_with(sp()), previous=tenant_with(None))
    assert [f.severity for f in findings] == [Severity.MEDIUM] and findings[0].new_since_last_scan is False


def test_home_tenant_app_fires_and_is_marked() -> None:
    findings, _ = run(tenant_with(sp(owner=TENANT.tenant_id)))
    assert findings and findings[0].evidence["home_tenant_app"] is True


def test_benign_lookalikes_stay_silent() -> None:
    silent = [
        sp(owner="f8cdef31-a31e-4b4a-93e4-5f571e91255a"),  # Microsoft first-party (Microsoft Services tenant)
        sp(owner="72F988BF-86F1-41AF-91AB-2D7CD011DB47"),  # Microsoft corp tenant, upper case
        sp(kind="eligible"),  # not active
        sp(ptype="group", app_id=None, owner=None),  # a role-assignable group: its members are checked per account
    ]
    for p in silent:
        findings, gaps = run(tenant_with(p))
        assert findings == [] and gaps == [], p


def test_administrative_unit_scope_lowers_severity() -> None:
    findings, _ = run(tenant_with(sp(scope="/administrativeUnits/1234")), previous=tenant_with())
    assert findings[0].severity == Severity.MEDIUM and findings[0].new_since_last_scan  # High - 1


def test_allow_listed_app_is_shown_suppressed() -> None:
    allow = Allowlist(apps=(AllowEntry(value="a1b2c3d4-0000-4000-8000-00000000beef", reason="backup vendor"),))
    (f,) = run(tenant_with(sp()), allowlist=allow)[0]
    assert f.suppressed and "backup vendor" in f.suppressed


def test_roles_not_collected_is_a_gap_not_clean() -> None:
    findings, gaps = run(tenant_with(None))
    assert findings == [] and [(g.detector, g.collection) for g in gaps] == [(SP_DET, "roles")]


# ---- through the store ----------------------------------------------------------------------------------------------
def _scan(store: Store, accounts: list, tenant: TenantInfo) -> str:
    sid = store.begin_scan(TENANT.tenant_id)
    store.put_accounts(sid, accounts)
    store.set_tenant(sid, tenant.model_dump(mode="json"))
    store.finish_scan(sid, "complete")
    return sid


def _evaluate(store: Store, sid: str, tenant: TenantInfo) -> Any:
    return evaluate_scan(store, sid, tenant=tenant, allowlist=allowlist_from_config(AllowlistSection(), NOW)[0],
                         now=NOW)


def test_evaluate_scan_stores_tenant_findings_without_a_verdict_row(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        t1 = tenant_with()
        s1 = _scan(store, [clean_account("alice@contoso.com")], t1)
        _evaluate(store, s1, t1)
        assert store.findings(s1) == []
        t2 = tenant_with(sp())
        s2 = _scan(store, [clean_account("alice@contoso.com")], t2)
        _evaluate(store, s2, t2)
        (f,) = [x for x in store.findings(s2) if x["detector"] == SP_DET]
        assert f["account"].startswith("serviceprincipal:Mail Backup Sync") and f["severity"] == "high"
        assert f["new_since_last_scan"] is True
        assert [a["upn"] for a in store.accounts(s2)] == ["alice@contoso.com"]  # no pseudo-account verdict row
        # Third scan, still there: standing now (Medium, not new), same finding id followed in history.
        s3 = _scan(store, [clean_account("alice@contoso.com")], t2)
        _evaluate(store, s3, t2)
        (g,) = [x for x in store.findings(s3) if x["detector"] == SP_DET]
        assert g["id"] == f["id"] and g["severity"] == "medium" and g["new_since_last_scan"] is False
        assert store.history(f["id"])["first_scan_id"] == s2


def test_tenant_wide_source_failure_is_one_row_not_one_per_account(tmp_path: Path) -> None:
    why = NotCollected(reason="graph 403 Authorization_RequestDenied: insufficient privileges", code="403")
    upns = [f"user{i}@contoso.com" for i in range(25)]
    accounts = [clean_account(u).model_copy(update={"roles": why}) for u in upns]
    accounts.append(account_from_spec({"not_collected": ["inbox_rules"]}, "gap@contoso.com"))
    with Store(tmp_path / "db.sqlite") as store:
        t = tenant_with(None)
        sid = _scan(store, accounts, t)
        store.add_error(sid, None, "roles", why.reason, why.code)  # what the sweep records for a failed bulk source
        summary = _evaluate(store, sid, t)
        det_rows = [e for e in store.errors(sid) if e["collector"].startswith("detectors:")]
        roles_rows = [e for e in det_rows if e["collector"] == "detectors:roles"]
        assert len(roles_rows) == 1 and roles_rows[0]["upn"] is None
        assert "on 25 account(s)" in roles_rows[0]["message"] and SP_DET in roles_rows[0]["message"]
        assert "roles.privileged_role_new" in roles_rows[0]["message"]
        # A per-account failure is still reported per account.
        assert [(e["upn"], e["collector"]) for e in det_rows if e["upn"]] == [("gap@contoso.com",
                                                                               "detectors:inbox_rules")]
        assert summary.not_evaluated >= 25
        cov = store.get_tenant_data(sid, "detectors.coverage")
        assert cov[SP_DET] == 1 and json.dumps(cov)


# ---- tenant cases as data (tests.detectors.detector_cases.TENANT_CASES) ---------------------------------------------
def _grants(specs: list[dict[str, Any]]) -> tuple[OAuthGrant, ...]:
    return tuple(OAuthGrant(**{**g, "scopes": tuple(g.get("scopes", ()))}) for g in specs)


def _app_roles(specs: list[dict[str, Any]] | str) -> tuple[AppRoleGrant, ...] | None:
    return None if specs == "unread" else tuple(AppRoleGrant(**a) for a in specs)


def _transport(specs: list[dict[str, Any]] | str) -> tuple[TransportRule, ...] | None:
    return None if specs == "unread" else tuple(TransportRule(**r) for r in specs)


def run_tenant_case(spec: dict[str, Any]) -> tuple:
    tenant = TENANT.model_copy(update={
        "all_principals_grants": _grants(spec.get("tenant_grants", [])),
        "privileged_principals": tuple(PrivilegedPrincipal(**p) for p in spec.get("principals", [])),
        "app_role_grants": _app_roles(spec.get("app_roles", [])), "scanner_app_id": spec.get("scanner_app_id"),
        "transport_rules": _transport(spec.get("transport_rules", []))})
    previous = None
    if "previous_grants" in spec or "previous_app_roles" in spec or "previous_transport_rules" in spec:
        previous = TENANT.model_copy(update={"all_principals_grants": _grants(spec.get("previous_grants", [])),
                                             "all_principals_grants_read": spec.get("previous_grants_read"),
                                             "privileged_principals": (),
                                             "app_role_grants": _app_roles(spec.get("previous_app_roles", [])),
                                             "transport_rules": _transport(spec.get("previous_transport_rules",
                                                                                    []))})
    facts = TenantFacts(accounts_scanned=spec.get("accounts_scanned", 0),
                        oauth_grants_read=spec.get("oauth_grants_read", 0),
                        consent_admins_new_method={k: tuple(v) for k, v in spec.get("consent_admins", {}).items()})
    ctx = ScanContext(tenant=tenant, now=NOW, allowlist=allowlist_from_spec(spec), facts=facts,
                      first_scan=previous is None, previous_tenant=previous)
    return evaluate_tenant(tenant, facts, ctx)


@pytest.mark.parametrize(("detector", "name", "spec", "expected"), TENANT_CASES,
                         ids=[f"{c[0]}:{c[1]}" for c in TENANT_CASES])
def test_tenant_case(detector: str, name: str, spec: dict, expected: object) -> None:
    findings, gaps = run_tenant_case(spec)
    mine = [f for f in findings if f.detector == detector]
    if expected == "gap":
        collection = {"oauth.app_permission_mail_access": "app_roles",
                      "mail.transport_rule_external_forward": "transport_rules",
                      "mail.transport_rule_spam_bypass": "transport_rules"}.get(detector, "oauth_grants")
        # (two detectors read the mail-flow rules: each reports its own gap)
        assert mine == [] and [(g.detector, g.collection) for g in gaps
                               if g.detector == detector or g.collection != "transport_rules"] == [(detector, collection)]
        return
    assert [g for g in gaps if g.detector == detector] == []
    if expected is False:
        assert mine == [], f"{name}: unexpected {[f.evidence for f in mine]}"
        return
    assert len(mine) == 1, name
    (f,) = mine
    # a pseudo-account, never a UPN: an app's, or a mail-flow rule's (named by the rule, which may hold an address)
    assert f.account.startswith("serviceprincipal:") and "@" not in f.account or f.account.startswith("transportrule:")
    if expected == "suppressed":
        assert f.suppressed and f.severity == Severity.INFO
    else:
        assert f.suppressed is None and f.severity.label == expected and f.score > 0


def test_every_tenant_detector_has_firing_and_silent_cases() -> None:
    ids = {d.meta.id for d in tenant_catalogue()}
    assert ids - {c[0] for c in TENANT_CASES if c[3] not in (False, "gap", "suppressed")} == set()
    assert ids - {c[0] for c in TENANT_CASES if c[3] is False} == set()


def test_tenant_wide_grant_is_one_finding_naming_the_app_and_what_is_not_known() -> None:
    spec = {"tenant_grants": [{**ARCHIVER, "scopes": ["Mail.Read", "offline_access"]}], "previous_grants": [],
            "consent_admins": ADMIN}
    (f,), _ = run_tenant_case(spec)
    assert f.account == "serviceprincipal:Archiver X (a7c1e0f2-0000-4000-8000-00000000a7c1)"
    assert f.severity == Severity.CRITICAL and f.new_since_last_scan is True
    ev = f.evidence
    assert ev["granting_admin"] is None and "audit log" in ev["granting_admin_note"]
    assert ev["candidate_granting_admins"] == {"miriam@contoso.com": ["Cloud Application Administrator"]}
    assert ev["tenant_wide"] is True and ev["mail_scopes"] == ["Mail.Read"] and ev["offline_access"] is True


def test_the_grant_detector_is_not_a_per_account_detector() -> None:
    from detectors.engine import catalogue
    assert "oauth.tenant_wide_mail_grant" not in {d.meta.id for d in catalogue()}
